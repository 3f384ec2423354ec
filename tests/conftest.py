"""Shared fixtures: every async test runs on anyio's asyncio backend in looptime's virtual time.

Every test has a wall-clock timeout (pytest-timeout, ``timeout`` in pyproject.toml): a hang
fails that test, by name, instead of blocking the run. Tests marked ``slow`` (real processes,
virtual environments built on first use) get :data:`SLOW_TIMEOUT_S`. Test helpers are imported
by their module name (``from support import world``), never as ``tests.support``.
"""

from __future__ import annotations

from typing import Any, Final

import looptime
import pytest

SLOW_TIMEOUT_S: Final = 300.0
"""The wall-clock timeout of a test marked ``slow`` (one without its own ``timeout`` mark)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give every ``slow`` test without a ``timeout`` mark of its own :data:`SLOW_TIMEOUT_S`."""
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT_S))


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    """Run async tests on asyncio with a looptime loop: sleeps and timeouts cost no wall time."""
    return ("asyncio", {"loop_factory": looptime.new_event_loop})


@pytest.fixture(autouse=True)
def _state_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test keeps swarmpod's state file (lease journal, budgets) in its own directory."""
    monkeypatch.setenv("SWARMPOD_STATE_DIR", str(tmp_path_factory.mktemp("state")))

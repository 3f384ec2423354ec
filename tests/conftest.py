"""Shared fixtures: every async test runs on anyio's asyncio backend in looptime's virtual time."""

from __future__ import annotations

from typing import Any

import looptime
import pytest


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    """Run async tests on asyncio with a looptime loop: sleeps and timeouts cost no wall time."""
    return ("asyncio", {"loop_factory": looptime.new_event_loop})


@pytest.fixture(autouse=True)
def _state_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test keeps swarmpod's state file (lease journal, budgets) in its own directory."""
    monkeypatch.setenv("SWARMPOD_STATE_DIR", str(tmp_path_factory.mktemp("state")))

"""Shared fixtures: every async test runs on anyio's asyncio backend in looptime's virtual time
(except those on a real PostgreSQL, which run on the real clock: a server in another process
answers in real time, and virtual time would jump past its answers to the next timer).

``store_spot`` gives a test the place of its state, once a SQLite file and once a fresh
database on the session's PostgreSQL server (``pg_support``): the store tests run on both.

Every test has a wall-clock timeout (pytest-timeout, ``timeout`` in pyproject.toml): a hang
fails that test, by name, instead of blocking the run (an async test's from a thread, which
stops even an event loop that spins). Tests marked ``slow`` (real processes, virtual
environments built on first use) get :data:`SLOW_TIMEOUT_S`. Test helpers are imported
by their module name (``from support import world``), never as ``tests.support``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import looptime
import pytest

if TYPE_CHECKING:  # imported by the fixtures that need them (psycopg only when used)
    from pg_support import StoreKind, StoreSpot

    from benchmarks._pg_server import PostgresServer

SLOW_TIMEOUT_S: Final = 300.0
"""The wall-clock timeout of a test marked ``slow`` (one without its own ``timeout`` mark)."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give every ``slow`` test without a ``timeout`` mark of its own :data:`SLOW_TIMEOUT_S`;
    time async tests out from a thread.

    The default (signal) method raises inside whatever runs when the alarm rings; in an event
    loop that spins (a callback rescheduling itself at the same virtual instant) that is a
    callback, whose exception the loop logs and drops, so the test would run on for ever. The
    thread method ends the test's worker instead, and pytest-xdist reports the test by name.
    """
    default = float(config.getini("timeout") or 0)
    for item in items:
        marker = item.get_closest_marker("timeout")
        if marker is not None and marker.args:
            seconds = float(marker.args[0])
        else:
            seconds = SLOW_TIMEOUT_S if item.get_closest_marker("slow") else default
        is_async = inspect.iscoroutinefunction(getattr(item, "obj", None))
        if is_async or (marker is None and item.get_closest_marker("slow")):
            method = "thread" if is_async else "signal"
            item.add_marker(pytest.mark.timeout(seconds, method=method), append=False)


@pytest.fixture(scope="session", autouse=True)
def _no_implicit_event_loop() -> None:
    """No event loop is made behind a test's back. looptime's plugin asks the policy for the
    current loop at every test, which in a sync test makes one that nobody closes; the first
    ``anyio.run`` of a sync test (a doctest, a command run in-process) then drops it unclosed.
    With the main thread's loop set to none once, asking raises instead of making one."""
    asyncio.set_event_loop(None)


@pytest.fixture
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """Run async tests on asyncio with a looptime loop: sleeps and timeouts cost no wall time;
    on the real clock when the test's state is on PostgreSQL."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and callspec.params.get("store_kind") == "postgresql":
        return ("asyncio", {"loop_factory": asyncio.new_event_loop})
    return ("asyncio", {"loop_factory": looptime.new_event_loop})


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the whole session (started on first use)."""
    from benchmarks._pg_server import PostgresServer

    server = PostgresServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_kind(request: pytest.FixtureRequest) -> StoreKind:
    """Each store test runs twice: on SQLite, then on PostgreSQL."""
    kind: StoreKind = request.param
    return kind


@pytest.fixture
def spot(
    store_kind: StoreKind, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[StoreSpot]:
    """The test's state: a SQLite file in its tmp_path, or a fresh PostgreSQL database."""
    from pg_support import store_spot

    server = request.getfixturevalue("postgres_server") if store_kind == "postgresql" else None
    with store_spot(store_kind, tmp_path, server) as where:
        yield where


@pytest.fixture(autouse=True)
def _state_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test keeps swarmpod's state file (lease journal, budgets) in its own directory."""
    monkeypatch.setenv("SWARMPOD_STATE_DIR", str(tmp_path_factory.mktemp("state")))

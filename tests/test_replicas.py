"""Three real ``swarmpod serve`` processes on one PostgreSQL share one warm pool; one is killed.

The small version of ``make bench``'s replicas benchmark (``benchmarks/replicas.py``, which
runs 300 generations): generations sent round-robin to three replicas of one endpoint whose
MaxWorkers is 4, against an in-process emulator on the real clock (cold starts of a second,
generations of 100 ms, an idle window of 2 s, heartbeats every 2 s).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from benchmarks._pg_server import PostgresServer
from benchmarks.replicas import (
    ENDPOINT_IDLE_S,
    IDLE_WINDOW_S,
    MAX_WORKERS,
    TraceOutcome,
    bursts,
    run_trace,
)

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

TRACE = bursts(3, 9, 2.0)
HEARTBEAT_S = 2.0


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    """The real clock: the replicas are processes."""
    return ("asyncio", {"loop_factory": asyncio.new_event_loop})


async def test_three_replicas_share_one_warm_pool_under_the_cluster_wide_max_workers(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "three").mkdir()
    alone = await run_trace(TRACE, replicas=1, workdir=tmp_path / "one", server=None)
    three = await run_trace(TRACE, replicas=3, workdir=tmp_path / "three", server=postgres_server)
    for outcome in (alone, three):
        assert outcome.failed() == [], outcome.failed()
        assert len(outcome.ok()) == len(TRACE.arrivals)
        assert outcome.most_at_once <= MAX_WORKERS  # the emulator's ledger, every instant
        assert max(outcome.cancels.values(), default=0) <= 1  # none released twice
        assert max(outcome.late_stops_s, default=0.0) < 0.5  # none bills past its window
    assert three.shared_seats > 0  # a generation at one replica ran on another's worker
    assert all(len(three.ok(replica)) == 9 for replica in range(3))
    # On the real clock a release can be decided a moment later on a loaded machine: one
    # worker's window more (idle window + the endpoint's idle timeout) is jitter; replicas that
    # each held their own workers billed 24 against 15.
    one_window = IDLE_WINDOW_S + ENDPOINT_IDLE_S
    assert abs(three.billed_s - alone.billed_s) <= max(0.10 * alone.billed_s, one_window), (
        three.billed_s,
        alone.billed_s,
    )


async def test_a_replica_killed_mid_burst_fails_only_its_callers_and_its_workers_are_taken_over(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    killed: TraceOutcome = await run_trace(
        TRACE,
        replicas=3,
        workdir=tmp_path,
        server=postgres_server,
        kill_after=len(TRACE.arrivals) // 3,
        heartbeat_s=HEARTBEAT_S,
    )
    victim = killed.killed
    assert victim is not None
    assert killed.failed(victim), "its callers saw their connections drop"
    assert all(s.error is None for s in killed.sent if s.replica != victim), killed.failed()
    assert killed.takeover_s is not None and killed.takeover_s <= 2 * HEARTBEAT_S
    assert max(killed.cancels.values(), default=0) <= 1  # adopted or released, once
    assert max(killed.late_stops_s, default=0.0) < 0.5  # none billing past its idle window
    assert killed.most_at_once <= MAX_WORKERS

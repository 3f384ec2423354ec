"""What virtual time buys: emulated minutes run in a fraction of a wall-clock second.

The suite runs the same workloads on looptime's virtual clock and checks what happens in them
(tests/test_emulator_workers.py, test_engine_v1.py, test_cassette.py, test_replay.py); how
long they take on the wall clock is measured here, never asserted by a test (the machine is
shared and noisy). Each workload runs ``RUNS`` times on a fresh looptime loop; the table gives
the virtual seconds it covers and the wall seconds it took (median and worst), against the
goal of under one wall-clock second.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import anyio
import looptime

from orchestrator.emulator import Emulator, EmulatorConfig, EndpointConfig
from orchestrator.replay import load_cassette, load_scenario, replay_cassette, run_scenario

from ._emulated import emulated_orchestrator

__all__ = ["WORKLOADS", "Measurement", "Workload", "measure"]

RUNS: Final = 5
GOAL_WALL_S: Final = 1.0
_TESTS: Final = Path(__file__).resolve().parent.parent / "tests"
_CASSETTE: Final = _TESTS / "cassettes" / "cold_start_90s.cassette.jsonl"
_SCENARIO: Final = _TESTS / "scenarios" / "ten_minute_session.toml"


async def _emulator_cold_start() -> None:
    """The emulator alone: a wake-up job on an endpoint with a 120 s cold start."""
    config = EmulatorConfig(endpoints={"ep": EndpointConfig(cold_start_s=120.0)})
    async with Emulator(config) as emulator:
        endpoint = emulator.endpoint("ep")
        job = endpoint.submit({"action": "wakeup"}, {}, None, sync=False)
        await endpoint.wait_terminal(job, 900.0)
        if job.status != "COMPLETED":
            raise RuntimeError(f"the wake-up job ended {job.status}")


async def _engine_cold_start() -> None:
    """The engine end to end: one generation that waits for a 120 s cold start."""
    async with emulated_orchestrator(
        EndpointConfig(cold_start_s=120.0), StartupTimeoutSec=300
    ) as orch:
        result = await orch.generate({"prompt": "a fox", "width": 64, "height": 64, "steps": 4})
    if result.timings.startup < 120.0:
        raise RuntimeError(f"the cold start took {result.timings.startup} s")


async def _cassette_replay() -> None:
    """A recorded 90 s cold start played back from its cassette."""
    report = await replay_cassette(load_cassette(_CASSETTE))
    if not report.passed:
        raise RuntimeError(report.render())


async def _scenario_replay() -> None:
    """The ten-minute session scenario, fault script and all."""
    report = await run_scenario(load_scenario(_SCENARIO))
    if not report.passed:
        raise RuntimeError(report.render())


@dataclass(frozen=True)
class Workload:
    """A workload: its name and the coroutine function that runs it once."""

    name: str
    run: Callable[[], Awaitable[None]]


WORKLOADS: Final = (
    Workload("emulator: wake-up with a 120 s cold start", _emulator_cold_start),
    Workload("engine: generation with a 120 s cold start", _engine_cold_start),
    Workload("replay: the 90 s cold-start cassette", _cassette_replay),
    Workload("replay: the ten-minute scenario", _scenario_replay),
)
"""What is measured, in table order."""


@dataclass(frozen=True)
class Measurement:
    """One run of a workload: virtual seconds covered, wall seconds taken."""

    virtual_s: float
    wall_s: float


def measure(workload: Workload) -> Measurement:
    """Run ``workload`` once on a fresh looptime loop."""

    async def timed() -> float:
        start = anyio.current_time()
        await workload.run()
        return anyio.current_time() - start

    wall = time.perf_counter()
    virtual = anyio.run(timed, backend_options={"loop_factory": looptime.new_event_loop})
    return Measurement(virtual, time.perf_counter() - wall)


def main() -> None:
    """Run every workload ``RUNS`` times and print the table."""
    print(f"virtual time: emulated seconds against wall seconds ({RUNS} runs each)")
    print(f"{'workload':<46}{'virtual s':>10}{'wall s p50':>12}{'worst':>8}{'goal < 1 s':>12}")
    for workload in WORKLOADS:
        runs = [measure(workload) for _ in range(RUNS)]
        walls = [run.wall_s for run in runs]
        worst = max(walls)
        print(
            f"{workload.name:<46}{statistics.median(r.virtual_s for r in runs):>10.1f}"
            f"{statistics.median(walls):>12.3f}{worst:>8.3f}"
            f"{'met' if worst < GOAL_WALL_S else 'MISSED':>12}"
        )


if __name__ == "__main__":
    main()

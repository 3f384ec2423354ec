"""Scale: K generations in flight in one process (v2 leases, 32 workers), in virtual time.

All K generations are submitted at once (MaxConcurrent = K, so every one is admitted and in
flight; StartupTimeoutSec long enough for the last to get a seat), against an emulated endpoint
of 32 workers whose SwarmUI takes 2 s a generation. Each K
runs in a fresh Python process, measured from the process itself:

- **peak RSS** (``ru_maxrss`` of that process: the emulator, its fake SwarmUIs and the
  orchestrator together, as a user would see it);
- **CPU per generation**: the process's CPU time (user + system) over the run, divided by K;
- that **every generation completed**, and how many were **cold**: a generation is cold only
  when it waited for a worker's boot, so no more than 32 workers x their seats may be.

Goals (issue "Workers as one explicit state machine"): peak RSS < 600 MiB at K = 10 000, and CPU
per generation at K = 10 000 no more than 1.2x that at K = 1 000 (the pool's cost per event does
not grow with the line). Also measured here: what building one generation's chart with its
listeners costs (goal: <= 20 KiB and <= 0.2 ms).

Run ``python -m benchmarks.scale`` (``--runs 3`` by default: min / median / max), or
``python -m benchmarks.scale --one K`` for one measurement as JSON.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass
from typing import Final

import anyio
import looptime

from observability import GenerationTraces, Telemetry
from orchestrator import Orchestrator, OrchestratorError
from orchestrator.emulator import EndpointConfig
from orchestrator.emulator.swarm import SwarmConfig

from ._emulated import emulated_orchestrator

__all__ = ["ScaleFigure", "chart_cost", "measure"]

WORKERS: Final = 32
SIZES: Final = (1_000, 10_000)
RSS_GOAL_MIB: Final = 600.0
CPU_RATIO_GOAL: Final = 1.2
CHART_KIB_GOAL: Final = 20.0
CHART_MS_GOAL: Final = 0.2
PARAMS: Final = {"prompt": "scale", "width": 64, "height": 64, "steps": 4}
ENDPOINT: Final = EndpointConfig(
    protocol="v2",
    max_workers=WORKERS,
    cold_start_s=30.0,
    idle_timeout_s=5.0,
    swarm=SwarmConfig(seconds_per_step=0.5),
    rate_limits=None,
)


@dataclass(frozen=True)
class ScaleFigure:
    """One run of K generations in flight."""

    generations: int
    completed: int
    cold: int
    cpu_s: float
    peak_rss_mib: float
    virtual_s: float

    @property
    def cpu_ms_per_generation(self) -> float:
        """Process CPU per generation (ms)."""
        return 1000.0 * self.cpu_s / self.generations


async def _run(generations: int) -> ScaleFigure:
    async with emulated_orchestrator(
        ENDPOINT,
        telemetry=Telemetry.disabled(),
        MaxWorkers=WORKERS,
        MaxConcurrent=generations,
        IdleTimeoutSec=30,
        StartupTimeoutSec=7200,  # the last of K waits K / 32 x 2 s for a seat
    ) as orch:
        await _warm_up(orch)
        completed = cold = 0
        started_loop = anyio.current_time()
        started_cpu = time.process_time()

        async def one(seed: int) -> None:
            nonlocal completed, cold
            try:
                result = await orch.generate({**PARAMS, "seed": seed})
            except OrchestratorError:
                return
            completed += 1
            cold += result.cold_start

        async with anyio.create_task_group() as tasks:
            for seed in range(generations):
                tasks.start_soon(one, seed)
        cpu = time.process_time() - started_cpu
        virtual = anyio.current_time() - started_loop
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return ScaleFigure(generations, completed, cold, cpu, peak, virtual)


async def _warm_up(orch: Orchestrator) -> None:
    """Nothing: the K generations start from an endpoint with no worker (all cold at first)."""
    del orch


def measure(generations: int) -> ScaleFigure:
    """One run of ``generations`` in flight, in this process (call it in a fresh one)."""
    return anyio.run(_run, generations, backend_options={"loop_factory": looptime.new_event_loop})


def chart_cost(samples: int = 2000) -> tuple[float, float]:
    """(KiB, ms) to build one generation's chart with its listeners (path recorder, trace)."""
    from orchestrator.engine import GenerationPlan, GenerationRequest, GenerationRun
    from orchestrator.settings import Settings
    from orchestrator.workers import Admission

    telemetry = Telemetry.disabled()
    from observability import CostLedger

    traces = GenerationTraces(telemetry, CostLedger())
    timeouts = Settings.load(env={}, overrides={"EndpointId": "x"}).timeouts

    async def build(count: int) -> list[object]:
        async def connect() -> object:
            raise AssertionError("never run")

        plan = GenerationPlan(
            GenerationRequest(PARAMS),
            connect=connect,  # type: ignore[arg-type]
            http=None,  # type: ignore[arg-type]
            admission=Admission(1),
            timeouts=timeouts,
            poll_interval=1.0,
        )
        made: list[object] = []
        for _ in range(count):
            run = GenerationRun(plan)
            run.observe(traces.observe(run))
            made.append(run)
        return made

    async def main() -> tuple[float, float]:
        await build(100)
        gc.collect()
        tracemalloc.start()
        kept = await build(samples)
        size, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        del kept
        gc.collect()
        started = time.perf_counter()
        await build(samples)
        elapsed = time.perf_counter() - started
        return size / samples / 1024.0, 1000.0 * elapsed / samples

    return anyio.run(main)


def _in_fresh_process(generations: int) -> ScaleFigure:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.scale", "--one", str(generations)],
        check=True,
        capture_output=True,
        text=True,
    )
    return ScaleFigure(**json.loads(done.stdout.strip().splitlines()[-1]))


def _spread(values: list[float]) -> str:
    return f"{min(values):.1f} / {statistics.median(values):.1f} / {max(values):.1f}"


def main(argv: list[str] | None = None) -> int:
    """Print the scale figures with their goals; non-zero when a goal is missed."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale")
    parser.add_argument("--one", type=int, help="one run of K in flight, printed as JSON")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    if args.one:
        figure = measure(args.one)
        print(json.dumps(figure.__dict__))
        return 0
    runs: dict[int, list[ScaleFigure]] = {size: [] for size in SIZES}
    for _ in range(args.runs):
        for size in SIZES:  # side by side in each round, so both see the same machine
            runs[size].append(_in_fresh_process(size))
    print(f"Scale: K generations in flight, one process, {WORKERS} v2 workers, virtual time")
    print(f"(min / median / max of {args.runs} runs; each K in a fresh process)")
    print("| K | completed | cold | CPU ms per generation | peak RSS MiB | virtual s |")
    print("|---:|---:|---:|---:|---:|---:|")
    for size, figures in runs.items():
        print(
            f"| {size:,} | {min(f.completed for f in figures):,} | "
            f"{max(f.cold for f in figures)} | "
            f"{_spread([f.cpu_ms_per_generation for f in figures])} | "
            f"{_spread([f.peak_rss_mib for f in figures])} | "
            f"{statistics.median(f.virtual_s for f in figures):.0f} |"
        )
    small, large = SIZES
    ratios = [
        b.cpu_ms_per_generation / a.cpu_ms_per_generation
        for a, b in zip(runs[small], runs[large], strict=True)
    ]
    rss = max(f.peak_rss_mib for f in runs[large])
    all_done = all(f.completed == f.generations for fs in runs.values() for f in fs)
    cold_ok = all(f.cold <= WORKERS for fs in runs.values() for f in fs)
    kib, ms = chart_cost()
    goals = [
        (
            f"peak RSS at K = {large:,} < {RSS_GOAL_MIB:.0f} MiB",
            f"{rss:.0f} MiB",
            rss < RSS_GOAL_MIB,
        ),
        (
            f"CPU per generation at {large:,} <= {CPU_RATIO_GOAL}x that at {small:,}",
            f"{_spread(ratios)} (min / median / max)",
            statistics.median(ratios) <= CPU_RATIO_GOAL,
        ),
        ("every generation completed", str(all_done), all_done),
        (f"cold only while the {WORKERS} workers boot (<= {WORKERS})", str(cold_ok), cold_ok),
        (
            f"a generation's chart + listeners <= {CHART_KIB_GOAL:.0f} KiB, "
            f"<= {CHART_MS_GOAL} ms to make",
            f"{kib:.1f} KiB, {ms:.3f} ms",
            kib <= CHART_KIB_GOAL and ms <= CHART_MS_GOAL,
        ),
    ]
    print()
    for goal, shown, met in goals:
        print(f"- {goal}: {shown} — {'met' if met else 'MISSED'}")
    return 0 if all(met for _, _, met in goals) else 1


if __name__ == "__main__":
    sys.exit(main())

"""What holding workers costs and what it buys: every policy on three traces, two FlashBoot
regimes and ten seeds, against floors no policy can beat.

Policies (``_replay.Policy``):

- ``swarmpod-auto``: ``orchestrator.Orchestrator`` on v2 leases, ``IdleTimeoutSec = "auto"``;
- ``swarmpod-Ns``: the same with a fixed idle window of N s, N in 0, 5, 10, 20, 40, 60, 120,
  300;
- ``seed-5s`` / ``seed-120s``: the seed extension re-enacted from its C# source (``_seed``:
  SwarmUI runs its backend's generations one at a time; wake-up, 2 s delay, ``ready`` jobs,
  generation, ``shutdown``) on v1 workers, which idle out by the endpoint's idle timeout (5 s,
  RunPod's default; 120 s, HartsyAI's setup guide).

Traces (``_traces``): ``interactive`` (4 sessions of 10 min, a request every 20-90 s, away
20-40 min; its arrivals drawn from the seed), ``batch`` (200 at once), ``sparse`` (12, one
every 10 min).

Endpoint (``_replay.Endpoint``): cold start 60-90 s; FlashBoot revival 2-10 s within 10 min
of a stop (regime ``flashboot``) or never (``cold``); both drawn from the endpoint's RNG seeded
with the seed; RunPod's queue-delay scaler (a worker starts once a job waited 4 s);
``max_workers`` 3 (5 for the batch); one 64x64 image of 4 steps per request, 4 s on the worker.
(Why 4 s: the seed's generation is no RunPod job, so RunPod counts its worker idle meanwhile;
with 5 s of idle timeout a longer one would lose its worker mid-way, as on the real platform.)

Figures (``_figures``), per run, all read from the emulator: GPU-seconds billed (the ledger,
idle tails included) over the cost floor (``_floor``); added latency (time-to-image minus
generation) p50 and p95 over the latency floor; RunPod API calls the endpoint served, per
request and per cold generation. Then per policy the median and worst over the seeds, the
frontier (the points no other point beats on both cost and p50), the goals, and a plot of the
frontier per trace (``_plot``).

Run ``python -m benchmarks.lease_policies`` (``--markdown`` for GitHub tables, ``--small`` for
shrunk traces and two seeds, ``--jobs`` to run replays in parallel processes).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import anyio
import looptime

from ._figures import Run, run_of, summarise
from ._forwarding import measure_forwarding
from ._goals import checks, goals
from ._plot import write_plots
from ._replay import REGIMES, Endpoint, Policy, Regime, Replay, replay
from ._tables import Report, markdown, table
from ._traces import Trace, batch, interactive, sparse

__all__ = [
    "FIXED_WINDOWS_S",
    "POLICIES",
    "SEEDS",
    "Scenario",
    "main",
    "measure",
    "replay_in_virtual_time",
    "scenarios",
]

FIXED_WINDOWS_S: Final = (0, 5, 10, 20, 40, 60, 120, 300)
POLICIES: Final[tuple[Policy, ...]] = (
    Policy("swarmpod-auto", "swarmpod", "auto"),
    *(Policy(f"swarmpod-{window}s", "swarmpod", float(window)) for window in FIXED_WINDOWS_S),
    Policy("seed-5s", "seed", 5.0),
    Policy("seed-120s", "seed", 120.0),
)
SEEDS: Final = tuple(range(1, 11))
SMALL_SEEDS: Final = (1, 2)
FORWARDING_SAMPLES: Final = 200
PLOTS: Final = Path(__file__).parent / "plots"
Scale = Literal["full", "small"]


@dataclass(frozen=True)
class Scenario:
    """One trace on one endpoint (regime and seed), replayed under every policy."""

    trace: Trace
    endpoint: Endpoint


def _traces(scale: Scale, seed: int) -> list[Trace]:
    if scale == "small":
        return [
            interactive(seed=seed, sessions=1, session_s=180.0),
            batch(count=12),
            sparse(count=3),
        ]
    return [interactive(seed=seed), batch(), sparse()]


def scenarios(
    scale: Scale = "full",
    *,
    seeds: Sequence[int] = SEEDS,
    regimes: Sequence[Regime] = REGIMES,
) -> list[Scenario]:
    """Every (trace, regime, seed) to replay; ``small`` shrinks every trace."""
    found = []
    for index in range(3):
        for regime in regimes:
            for seed in seeds:
                trace = _traces(scale, seed)[index]
                workers = 5 if trace.name == "batch" else 3
                found.append(Scenario(trace, Endpoint(regime, seed, max_workers=workers)))
    return found


async def _replay_checked(trace: Trace, policy: Policy, endpoint: Endpoint) -> Replay:
    if not getattr(asyncio.get_running_loop(), "looptime_on", False):
        raise RuntimeError("virtual time is off: hours of trace would take hours")
    return await replay(trace, policy, endpoint)


def replay_in_virtual_time(trace: Trace, policy: Policy, endpoint: Endpoint) -> Replay:
    """Replay on a fresh looptime loop (``new_event_loop`` comes with time compaction on)."""
    loop_options = {"loop_factory": looptime.new_event_loop}
    return anyio.run(_replay_checked, trace, policy, endpoint, backend_options=loop_options)


def _one_run(scenario: Scenario, policy: Policy) -> Run:
    found = replay_in_virtual_time(scenario.trace, policy, scenario.endpoint)
    return run_of(scenario.trace, policy, scenario.endpoint, found)


def measure(
    scale: Scale = "full",
    *,
    seeds: Sequence[int] | None = None,
    policies: Sequence[Policy] = POLICIES,
    jobs: int = 1,
    forwarding_samples: int | None = None,
    progress: bool = False,
) -> Report:
    """Replay every scenario under every policy, summarise, judge the goals.

    Args:
        scale: ``full`` (the benchmark) or ``small`` (shrunk traces).
        seeds: the seeds (default 1-10, or 1-2 for ``small``).
        policies: the policies.
        jobs: replays run at once, each in its own process (1: in this one).
        forwarding_samples: warm generations of the real-time forwarding measurement (run
            first, alone); 0 skips it; None = 200 (``full``) or 0 (``small``).
        progress: print a dot per replay on stderr.
    """
    chosen = tuple(seeds if seeds is not None else (SEEDS if scale == "full" else SMALL_SEEDS))
    if forwarding_samples is None:
        forwarding_samples = FORWARDING_SAMPLES if scale == "full" else 0
    forwarding = measure_forwarding(forwarding_samples) if forwarding_samples else None
    plan = [(s, p) for s in scenarios(scale, seeds=chosen) for p in policies]
    runs: list[Run] = []
    if jobs <= 1:
        for scenario, policy in plan:
            runs.append(_one_run(scenario, policy))
            _tick(progress)
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(_one_run, scenario, policy) for scenario, policy in plan]
            for future in futures:
                runs.append(future.result())
                _tick(progress)
    if progress:
        print(file=sys.stderr)
    summaries = summarise(runs)
    traces: dict[str, Trace] = {}
    for scenario, _policy in plan:
        traces.setdefault(scenario.trace.name, scenario.trace)
    return Report(
        runs=tuple(runs),
        summaries=summaries,
        goals=goals(summaries, forwarding),
        checks=checks(runs),
        forwarding=forwarding,
        traces=tuple(traces.values()),
        seeds=chosen,
    )


def _tick(progress: bool) -> None:
    if progress:
        print(".", end="", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark, print its tables and write the frontier plots."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lease_policies")
    parser.add_argument("--markdown", action="store_true", help="print GitHub markdown tables")
    parser.add_argument("--small", action="store_true", help="shrunk traces, two seeds")
    parser.add_argument("--seeds", type=int, default=None, help="seeds 1..N")
    parser.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="replays at once (processes)"
    )
    parser.add_argument(
        "--plots", default=str(PLOTS), help="directory of the frontier SVGs ('' = none)"
    )
    args = parser.parse_args(argv)
    seeds = None if args.seeds is None else tuple(range(1, args.seeds + 1))
    report = measure("small" if args.small else "full", seeds=seeds, jobs=args.jobs, progress=True)
    print(markdown(report) if args.markdown else table(report))
    if args.plots:
        for path in write_plots(report, Path(args.plots)):
            print(f"frontier plot: {path}")


if __name__ == "__main__":
    main()

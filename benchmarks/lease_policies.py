"""What holding workers costs: four policies replayed side by side on three request traces.

Policies (``_replay.Policy``):

- ``seed-5s`` / ``seed-120s``: the seed extension's flow (``_seed``: wake-up job polled every
  second, ``ready`` jobs, generate, ``shutdown``) on v1 workers; the endpoint's idle timeout
  (5 s, RunPod's default; 120 s, HartsyAI's SETUP) is all that keeps a worker warm.
- ``swarmpod-fixed`` / ``swarmpod-auto``: ``orchestrator.Orchestrator`` on v2 leases with
  ``IdleTimeoutSec`` 60 or ``auto``; the endpoint keeps RunPod's 5 s idle timeout.

Traces (``_traces``): ``interactive`` (4 sessions of 10 min, a request every 20-90 s, away
20-40 min), ``batch`` (200 at once), ``sparse`` (12, one every 10 min).

Endpoint (``_replay.Endpoint``): cold start 60-90 s, FlashBoot revival 2-10 s (both drawn from
the endpoint's seeded RNG), RunPod's queue-delay scaler (a worker starts once a job waited 4 s),
``max_workers`` 3 (interactive, sparse) or 5 (batch). Every request is one 64x64 image of 4
steps; the fake SwarmUI takes 1 s a step, so an image takes 4 s on the worker. (Why not more:
the seed's generation is no RunPod job, so RunPod counts the worker idle while it generates;
with 5 s of idle timeout a longer generation loses its worker mid-way, as on the real
platform.)

Everything runs in virtual time (looptime): hours of trace take seconds of wall time, with real
HTTP, WebSocket and PNG work in between. Figures per policy and trace:

- billed GPU-seconds from the emulator's ledger once every worker stopped (idle tails
  included), and their ratio to the floor (``_floor``, which says exactly what it computes);
- p50 / p95 time-to-image, request arrival to result (the median, and the nearest-rank 95th
  percentile; successful requests only, ``ok`` counts them);
- boots (ledger entries; FlashBoot revivals among them) and cold generations (swarmpod:
  ``GenerationResult.cold_start``; seed: its wake-up job waited over 1 s for a worker);
- RunPod API calls per request (every call the endpoint served / requests) and per cold
  generation (calls caused by the cold generations, ``_calls``, / their number).

Run ``python -m benchmarks.lease_policies`` (``--markdown`` for a GitHub table, ``--small``
for a quick reduced run).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from typing import Literal

import anyio
import looptime

from ._figures import Goal as Goal
from ._figures import Report as Report
from ._figures import Row as Row
from ._figures import goals as goals
from ._figures import row_of as row_of
from ._forwarding import measure_forwarding
from ._replay import Endpoint, Policy, Replay, replay
from ._tables import markdown as markdown
from ._tables import table as table
from ._traces import Trace, batch, interactive, sparse

__all__ = [
    "POLICIES",
    "Goal",
    "Report",
    "Row",
    "goals",
    "main",
    "markdown",
    "measure",
    "row_of",
    "scenarios",
    "table",
]

POLICIES: tuple[Policy, ...] = (
    Policy("seed-5s", "seed", 5.0),
    Policy("seed-120s", "seed", 120.0),
    Policy("swarmpod-fixed", "swarmpod", 60.0),
    Policy("swarmpod-auto", "swarmpod", "auto"),
)
FORWARDING_SAMPLES = 200
Scale = Literal["full", "small"]


def scenarios(scale: Scale = "full") -> list[tuple[Trace, Endpoint]]:
    """The traces and their endpoints; ``small`` shrinks every trace for a quick run."""
    if scale == "small":
        traces = [interactive(sessions=1, session_s=180.0), batch(count=12), sparse(count=3)]
    else:
        traces = [interactive(), batch(), sparse()]
    return [(trace, Endpoint(max_workers=5 if trace.name == "batch" else 3)) for trace in traces]


async def _replay_checked(trace: Trace, policy: Policy, endpoint: Endpoint) -> Replay:
    if not getattr(asyncio.get_running_loop(), "looptime_on", False):
        raise RuntimeError("virtual time is off: hours of trace would take hours")
    return await replay(trace, policy, endpoint)


def _replay_in_virtual_time(trace: Trace, policy: Policy, endpoint: Endpoint) -> Replay:
    """Replay on a fresh looptime loop (``new_event_loop`` comes with time compaction on)."""
    loop_options = {"loop_factory": looptime.new_event_loop}
    return anyio.run(_replay_checked, trace, policy, endpoint, backend_options=loop_options)


def measure(scale: Scale = "full", *, forwarding_samples: int | None = None) -> Report:
    """Replay every trace under every policy, measure forwarding, check the goals.

    Args:
        scale: ``full`` (the benchmark) or ``small`` (shrunk traces, for tests and a quick look).
        forwarding_samples: warm generations of the real-time forwarding measurement; 0 skips
            it; None = 200 (``full``) or 0 (``small``).
    """
    if forwarding_samples is None:
        forwarding_samples = FORWARDING_SAMPLES if scale == "full" else 0
    forwarding = measure_forwarding(forwarding_samples) if forwarding_samples else None
    rows: list[Row] = []
    plan = scenarios(scale)
    for trace, endpoint in plan:
        for policy in POLICIES:
            run = _replay_in_virtual_time(trace, policy, endpoint)
            rows.append(row_of(trace, policy, endpoint, run))
    return Report(tuple(rows), forwarding, goals(rows, forwarding), tuple(t for t, _ in plan))


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and print its table (``--markdown``: a GitHub table)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lease_policies")
    parser.add_argument("--markdown", action="store_true", help="print a GitHub markdown table")
    parser.add_argument("--small", action="store_true", help="shrunk traces, a quick look")
    args = parser.parse_args(argv)
    report = measure("small" if args.small else "full")
    print(markdown(report) if args.markdown else table(report))


if __name__ == "__main__":
    main()

"""The figures of the lease-policy benchmark: one row per policy and trace, and the goals."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from ._floor import Floor, StartCosts, floor
from ._forwarding import Forwarding
from ._replay import Endpoint, Policy, Replay
from ._traces import Trace

__all__ = ["Goal", "Report", "Row", "goals", "row_of"]


@dataclass(frozen=True)
class Row:
    """The figures of one policy on one trace.

    Attributes:
        trace: the trace's name.
        policy: the policy's name.
        requests: requests in the trace.
        ok: requests that got their image.
        billed_s: GPU-seconds billed (the ledger, idle tails included).
        floor: the trace's floor (``_floor``).
        floor_without_flashboot: the floor if every restart were a cold start (for comparison:
            it is no floor here, since the endpoint revives workers by FlashBoot).
        p50_s: median time-to-image (None when no request succeeded).
        p95_s: 95th percentile time-to-image (nearest rank).
        boots: workers started (ledger entries).
        flashboots: of those, FlashBoot revivals.
        cold_generations: generations that waited for a worker to start.
        api_calls: RunPod API calls the endpoint served.
        cold_api_calls: API calls caused by the cold generations.
        unattributed_calls: API calls made outside every request's context.
        generation_s: seconds one image takes on a worker.
        workers_left: workers still live when the replay stopped waiting (0 normally).
        failures: how the failed requests failed: (error type, count), most frequent first.
        virtual_s: loop seconds the replay took.
        wall_s: wall seconds the replay took.
    """

    trace: str
    policy: str
    requests: int
    ok: int
    billed_s: int
    floor: Floor
    floor_without_flashboot: Floor
    p50_s: float | None
    p95_s: float | None
    boots: int
    flashboots: int
    cold_generations: int
    api_calls: int
    cold_api_calls: int
    unattributed_calls: int
    generation_s: float
    workers_left: int
    failures: tuple[tuple[str, int], ...]
    virtual_s: float
    wall_s: float

    @property
    def floor_s(self) -> float:
        """The floor in GPU-seconds."""
        return self.floor.total

    @property
    def ratio(self) -> float:
        """Billed GPU-seconds over the floor (FlashBoot revivals counted as the emulator
        grants them)."""
        return self.billed_s / self.floor_s if self.floor_s > 0 else math.inf

    @property
    def issue_ratio(self) -> float:
        """Billed GPU-seconds over the floor as the issue defines it: every restart a cold
        start, ``min(gap, cold start)`` per gap."""
        total = self.floor_without_flashboot.total
        return self.billed_s / total if total > 0 else math.inf

    @property
    def calls_per_generation(self) -> float:
        """RunPod API calls per request of the trace."""
        return self.api_calls / self.requests if self.requests else 0.0

    @property
    def calls_per_cold_generation(self) -> float | None:
        """RunPod API calls per cold generation (None without cold generations)."""
        return self.cold_api_calls / self.cold_generations if self.cold_generations else None


@dataclass(frozen=True)
class Goal:
    """One product goal, and whether the measured figure meets it.

    Attributes:
        what: the goal in words, e.g. ``swarmpod-auto interactive: billed <= 1.25x floor``.
        limit: the bound (the measured figure must be <= it).
        measured: the figure measured (None: could not be measured).
        unit: how to print the two numbers (``x``, ``s``, ``ms`` or ``calls``).
    """

    what: str
    limit: float
    measured: float | None
    unit: str

    @property
    def passed(self) -> bool:
        """Whether the measured figure is within the limit."""
        return self.measured is not None and self.measured <= self.limit


@dataclass(frozen=True)
class Report:
    """Everything one run measured.

    Attributes:
        rows: one per trace and policy, traces in order, policies in run order.
        forwarding: the real-time forwarding measurement (None when skipped).
        goals: the product goals checked against the rows and the forwarding figure.
        traces: the traces replayed.
    """

    rows: tuple[Row, ...]
    forwarding: Forwarding | None
    goals: tuple[Goal, ...]
    traces: tuple[Trace, ...]


def _percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def row_of(trace: Trace, policy: Policy, endpoint: Endpoint, run: Replay) -> Row:
    """Turn one replay's raw figures into a table row (with the trace's floor)."""
    durations = [endpoint.generation_s] * len(trace)
    costs = StartCosts.of(endpoint.cold_start_s, endpoint.flashboot_start_s)
    cold_only = StartCosts.of(endpoint.cold_start_s, None)
    workers = endpoint.max_workers
    latencies = [o.latency for o in run.outcomes if o.latency is not None]
    cold = [o for o in run.outcomes if o.cold_start and o.error is None]
    kinds = [o.error.split(":", 1)[0] for o in run.outcomes if o.error is not None]
    return Row(
        trace=trace.name,
        policy=policy.name,
        requests=len(trace),
        ok=len(latencies),
        billed_s=run.billed_seconds,
        floor=floor(trace.arrivals, durations, costs, workers=workers),
        floor_without_flashboot=floor(trace.arrivals, durations, cold_only, workers=workers),
        p50_s=statistics.median(latencies) if latencies else None,
        p95_s=_percentile(latencies, 0.95),
        boots=len(run.ledger),
        flashboots=sum(entry.flashboot for entry in run.ledger),
        cold_generations=len(cold),
        api_calls=run.api_calls,
        cold_api_calls=sum(o.api_calls for o in cold),
        unattributed_calls=run.unattributed_calls,
        generation_s=endpoint.generation_s,
        workers_left=run.workers_left,
        failures=tuple(Counter(kinds).most_common()),
        virtual_s=run.virtual_s,
        wall_s=run.wall_s,
    )


def goals(rows: Sequence[Row], forwarding: Forwarding | None) -> tuple[Goal, ...]:
    """The product's goals, checked against ``rows`` (swarmpod-auto) and ``forwarding``."""
    by = {(row.trace, row.policy): row for row in rows}
    found: list[Goal] = []
    auto = "swarmpod-auto"
    for trace, limit in (("interactive", 1.25), ("batch", 1.05)):
        row = by.get((trace, auto))
        if row is not None:
            what = f"{auto} {trace}: billed <= {limit}x floor (the issue's: min(gap, cold start))"
            found.append(Goal(what, limit, row.issue_ratio, "x"))
    row = by.get(("interactive", auto))
    if row is not None:
        limit = row.generation_s + 1.0
        what = f"{auto} interactive: p50 time-to-image <= generation + 1 s"
        found.append(Goal(what, limit, row.p50_s, "s"))
    for row in rows:
        if row.policy == auto:
            what = f"{auto} {row.trace}: RunPod API calls per cold generation <= 6"
            found.append(Goal(what, 6.0, row.calls_per_cold_generation, "calls"))
    if forwarding is not None:
        what = "warm generation, request -> forwarded to the worker: median <= 2 ms"
        found.append(Goal(what, 2.0, forwarding.forwarded_ms, "ms"))
    return tuple(found)

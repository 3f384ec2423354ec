"""The figures of the lease-policy benchmark: one :class:`Run` per replay, their
:class:`Summary` over seeds (median and worst), the cost-latency frontier, and the goals."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from ._draws import boots_match
from ._floor import Floor, cost_floor, latency_floor
from ._replay import Endpoint, Policy, Regime, Replay
from ._traces import Trace

__all__ = ["Run", "Spread", "Summary", "frontier", "run_of", "summarise"]

_FLOOR_TOLERANCE_S = 1e-6


@dataclass(frozen=True)
class Run:
    """The figures of one policy on one trace, one regime, one seed (all from the emulator).

    Attributes:
        trace: the trace's name.
        regime: ``flashboot`` or ``cold``.
        seed: the RNG seed (start draws; the interactive trace's arrivals too).
        policy: the policy's name.
        requests: requests in the trace.
        ok: requests that got their image.
        billed_s: GPU-seconds billed (the ledger, idle tails included).
        floor: the cost floor of the trace (the clairvoyant at the latency floor).
        floor_at_waits: the cost floor of the requests this run served, at the waits it made
            them wait: what it cannot beat whatever latency it chose.
        generation_s: seconds one image takes on a worker.
        added_p50_s: median added latency (time-to-image minus generation; served requests).
        added_p95_s: 95th percentile of it (nearest rank).
        floor_p50_s: the latency floor's median added latency.
        floor_p95_s: the latency floor's 95th percentile.
        waits_above_floor: every order statistic of the run's added latency is at or above the
            latency floor's.
        boots: workers started (ledger entries).
        flashboots: of those, FlashBoot revivals.
        boots_as_drawn: every worker booted exactly its draw of the seeded RNG.
        cold_generations: served generations that waited for a worker to start.
        api_calls: RunPod API requests the endpoint served (every route and status).
        calls_by_route: ``(route, count)``, most frequent first.
        workers_left: workers still live when the replay stopped waiting (0 normally).
        failures: ``(error type, count)`` of the failed requests, most frequent first.
        virtual_s: loop seconds the replay took.
        wall_s: wall seconds the replay took.
    """

    trace: str
    regime: Regime
    seed: int
    policy: str
    requests: int
    ok: int
    billed_s: int
    floor: Floor
    floor_at_waits: Floor
    generation_s: float
    added_p50_s: float | None
    added_p95_s: float | None
    floor_p50_s: float
    floor_p95_s: float
    waits_above_floor: bool
    boots: int
    flashboots: int
    boots_as_drawn: bool
    cold_generations: int
    api_calls: int
    calls_by_route: tuple[tuple[str, int], ...]
    workers_left: int
    failures: tuple[tuple[str, int], ...]
    virtual_s: float
    wall_s: float

    @property
    def ratio(self) -> float:
        """Billed GPU-seconds over the cost floor."""
        total = self.floor.total_s
        return self.billed_s / total if total > 0 else math.inf

    @property
    def beats_its_floor(self) -> bool:
        """Whether the run billed less than the floor at its own waits (must never happen)."""
        return self.billed_s < self.floor_at_waits.total_s - _FLOOR_TOLERANCE_S

    @property
    def calls_per_generation(self) -> float:
        """RunPod API calls per request of the trace."""
        return self.api_calls / self.requests if self.requests else 0.0

    @property
    def calls_per_cold_generation(self) -> float | None:
        """Every RunPod API call the endpoint served over the cold generations (None without
        one): what a generation that finds no warm worker costs in calls, warm ones free."""
        return self.api_calls / self.cold_generations if self.cold_generations else None

    @property
    def calls_per_lease(self) -> float | None:
        """Every RunPod API call the endpoint served over the jobs asked for (``/run``; None
        without one): what getting a worker costs, whether it booted or came back at once
        (a worker released and asked for again within the endpoint's idle timeout)."""
        runs = dict(self.calls_by_route).get("run", 0)
        return self.api_calls / runs if runs else None


def _percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def run_of(trace: Trace, policy: Policy, endpoint: Endpoint, replay: Replay) -> Run:
    """Turn one replay's raw figures into a :class:`Run`, with the trace's floors."""
    took = endpoint.generation_s
    durations = [took] * len(trace)
    draws = endpoint.draws
    clairvoyant = latency_floor(trace.arrivals, durations, workers=endpoint.max_workers)
    served = [o for o in replay.outcomes if o.latency is not None]
    waits = [max(0.0, (o.latency or 0.0) - took) for o in served]
    kinds = [o.error.split(":", 1)[0] for o in replay.outcomes if o.error is not None]
    routes = Counter(route for _method, route, _status in replay.api_calls)
    floor_waits = sorted(clairvoyant)
    above = all(
        mine >= least - _FLOOR_TOLERANCE_S
        for mine, least in zip(sorted(waits), floor_waits, strict=False)
    )
    return Run(
        trace=trace.name,
        regime=endpoint.regime,
        seed=endpoint.seed,
        policy=policy.name,
        requests=len(trace),
        ok=len(served),
        billed_s=replay.billed_seconds,
        floor=cost_floor(trace.arrivals, durations, draws, waits=clairvoyant),
        floor_at_waits=cost_floor(
            [o.arrival for o in served], [took] * len(served), draws, waits=waits
        ),
        generation_s=took,
        added_p50_s=statistics.median(waits) if waits else None,
        added_p95_s=_percentile(waits, 0.95),
        floor_p50_s=statistics.median(clairvoyant) if clairvoyant else 0.0,
        floor_p95_s=_percentile(clairvoyant, 0.95) or 0.0,
        waits_above_floor=above,
        boots=len(replay.ledger),
        flashboots=sum(entry.flashboot for entry in replay.ledger),
        boots_as_drawn=boots_match(draws, replay.ledger),
        cold_generations=sum(o.cold_start for o in served),
        api_calls=len(replay.api_calls),
        calls_by_route=tuple(routes.most_common()),
        workers_left=replay.workers_left,
        failures=tuple(Counter(kinds).most_common()),
        virtual_s=replay.virtual_s,
        wall_s=replay.wall_s,
    )


@dataclass(frozen=True)
class Spread:
    """A figure over seeds: its median and its worst value.

    >>> Spread.of([1.0, 3.0, 2.0])
    Spread(median=2.0, worst=3.0)
    >>> Spread.of([5, 4], worst=min)
    Spread(median=4.5, worst=4)
    """

    median: float
    worst: float

    @classmethod
    def of(
        cls, values: Sequence[float], *, worst: Callable[[Sequence[float]], float] = max
    ) -> Spread:
        """The median and worst (``max`` unless told: higher is worse) of ``values``."""
        return cls(statistics.median(values), worst(values))


@dataclass(frozen=True)
class Summary:
    """One policy on one trace in one regime, over its seeds.

    Attributes:
        trace: the trace's name.
        regime: ``flashboot`` or ``cold``.
        policy: the policy's name.
        seeds: how many seeds.
        requests: requests per run (the first seed's; the interactive trace's vary by seed).
        failed: requests that got no image (worst: the most).
        billed_s: GPU-seconds billed.
        floor_s: the cost floor.
        ratio: billed over the cost floor.
        added_p50_s: median added latency (a run with no image counts as infinite).
        added_p95_s: 95th percentile added latency.
        floor_p50_s: the latency floor's median (same for every seed).
        calls_per_generation: RunPod API calls per request.
        calls_per_cold: RunPod API calls per cold generation (None: no run had one).
        calls_per_lease: RunPod API calls per job asked for (``/run``; None: no run had one).
        cold_share: the share of served generations that were cold.
        calls_by_route: mean calls per cold generation, per route, over the seeds.
        boots: workers started.
        beaten_by: the policies that beat this one on both cost and p50 (medians).
        calls_per_cold_by_seed: ``(seed, calls per cold generation)`` of each run that had one.
    """

    trace: str
    regime: Regime
    policy: str
    seeds: int
    requests: int
    failed: Spread
    billed_s: Spread
    floor_s: Spread
    ratio: Spread
    added_p50_s: Spread
    added_p95_s: Spread
    floor_p50_s: float
    calls_per_generation: Spread
    calls_per_cold: Spread | None
    calls_per_lease: Spread | None
    cold_share: float
    calls_by_route: tuple[tuple[str, float], ...]
    boots: Spread
    beaten_by: tuple[str, ...] = ()
    calls_per_cold_by_seed: tuple[tuple[int, float], ...] = ()

    @property
    def on_frontier(self) -> bool:
        """No other point beats it on both cost and p50 added latency (medians)."""
        return not self.beaten_by


def _inf(value: float | None) -> float:
    return math.inf if value is None else value


def summarise(runs: Sequence[Run]) -> tuple[Summary, ...]:
    """One :class:`Summary` per (trace, regime, policy), in run order, frontier marked."""
    groups: dict[tuple[str, Regime, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.trace, run.regime, run.policy), []).append(run)
    found = []
    for (trace, regime, policy), group in groups.items():
        per_cold = [r.calls_per_cold_generation for r in group]
        known = [value for value in per_cold if value is not None]
        per_lease = [r.calls_per_lease for r in group if r.calls_per_lease is not None]
        served = sum(r.ok for r in group)
        routes: Counter[str] = Counter()
        colds = sum(r.cold_generations for r in group)
        for run in group:
            routes.update(dict(run.calls_by_route))
        by_route = tuple((route, count / colds) for route, count in routes.most_common() if colds)
        found.append(
            Summary(
                trace=trace,
                regime=regime,
                policy=policy,
                seeds=len(group),
                requests=group[0].requests,
                failed=Spread.of([r.requests - r.ok for r in group]),
                billed_s=Spread.of([r.billed_s for r in group]),
                floor_s=Spread.of([r.floor.total_s for r in group], worst=min),
                ratio=Spread.of([r.ratio for r in group]),
                added_p50_s=Spread.of([_inf(r.added_p50_s) for r in group]),
                added_p95_s=Spread.of([_inf(r.added_p95_s) for r in group]),
                floor_p50_s=group[0].floor_p50_s,
                calls_per_generation=Spread.of([r.calls_per_generation for r in group]),
                calls_per_cold=Spread.of(known) if known else None,
                calls_per_lease=Spread.of(per_lease) if per_lease else None,
                cold_share=colds / served if served else 0.0,
                calls_by_route=by_route,
                boots=Spread.of([r.boots for r in group]),
                calls_per_cold_by_seed=tuple(
                    sorted(
                        (r.seed, r.calls_per_cold_generation)
                        for r in group
                        if r.calls_per_cold_generation is not None
                    )
                ),
            )
        )
    return tuple(_with_frontier(found))


def frontier(points: Sequence[Summary]) -> tuple[Summary, ...]:
    """``points`` (one trace and regime) with ``beaten_by`` set: the points strictly cheaper
    AND strictly quicker at the median (cost over the floor, p50 added latency)."""
    marked = []
    for point in points:
        beaten = tuple(
            other.policy
            for other in points
            if other is not point
            and other.ratio.median < point.ratio.median
            and other.added_p50_s.median < point.added_p50_s.median
        )
        marked.append(replace(point, beaten_by=beaten))
    return tuple(marked)


def _with_frontier(summaries: list[Summary]) -> list[Summary]:
    by_plot: dict[tuple[str, Regime], list[Summary]] = {}
    for summary in summaries:
        by_plot.setdefault((summary.trace, summary.regime), []).append(summary)
    marked = {
        id(summary): found
        for group in by_plot.values()
        for summary, found in zip(group, frontier(group), strict=True)
    }
    return [marked[id(summary)] for summary in summaries]

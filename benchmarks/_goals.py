"""The goals of issue 15 checked against the figures, each with the reason when it is missed,
and the checks that the floors are floors (no run beats them, every run booted its draws)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ._figures import Run, Summary
from ._forwarding import Forwarding

__all__ = ["AUTO", "Goal", "checks", "goals"]

AUTO = "swarmpod-auto"
_COST_LIMITS = {"interactive": 2.0, "sparse": 2.0, "batch": 1.10}
_REGIME_WORDS = {"flashboot": "FlashBoot granted", "cold": "FlashBoot never"}


@dataclass(frozen=True)
class Goal:
    """One goal, the figure measured for it, and why it is missed when it is.

    Attributes:
        what: the goal in words.
        limit: the bound (the measured figure must be <= it).
        measured: the figure measured (None: could not be measured).
        unit: how to print the two numbers (``x``, ``s``, ``ms``, ``calls``, ``points``,
            ``runs``).
        reason: the measured facts behind the figure (printed for a missed goal).
    """

    what: str
    limit: float
    measured: float | None
    unit: str
    reason: str = ""

    @property
    def passed(self) -> bool:
        """Whether the measured figure is within the limit."""
        return self.measured is not None and self.measured <= self.limit


def _regime(summary: Summary) -> str:
    return _REGIME_WORDS[summary.regime]


def _point(summary: Summary) -> str:
    return f"{summary.policy} {summary.ratio.median:.2f}x, p50 +{summary.added_p50_s.median:.1f} s"


def goals(summaries: Sequence[Summary], forwarding: Forwarding | None) -> tuple[Goal, ...]:
    """Issue 15's must-holds for ``swarmpod-auto`` (medians over seeds unless said)."""
    found: list[Goal] = []
    autos = [s for s in summaries if s.policy == AUTO]
    by_key = {(s.trace, s.regime, s.policy): s for s in summaries}
    for auto in autos:
        beaters = [by_key[(auto.trace, auto.regime, name)] for name in auto.beaten_by]
        reason = (
            f"{_point(auto)}; beaten by " + "; ".join(_point(b) for b in beaters)
            if beaters
            else _point(auto)
        )
        what = f"{AUTO} {auto.trace} ({_regime(auto)}): on the cost/p50 frontier"
        found.append(Goal(what, 0, len(beaters), "points", reason))
    for auto in autos:
        limit = _COST_LIMITS.get(auto.trace)
        if auto.regime != "cold" or limit is None:
            continue
        what = f"{AUTO} {auto.trace} ({_regime(auto)}): GPU-s <= {limit:g}x the cost floor"
        reason = (
            f"billed {auto.billed_s.median:.0f} GPU-s (worst {auto.ratio.worst:.2f}x) vs floor "
            f"{auto.floor_s.median:.0f}; {auto.boots.median:g} workers started, "
            f"{auto.cold_share:.0%} of generations cold"
        )
        found.append(Goal(what, limit, auto.ratio.median, "x", reason))
    for auto in autos:
        if auto.trace != "interactive":
            continue
        what = f"{AUTO} interactive ({_regime(auto)}): p50 added latency <= 1 s"
        reason = (
            f"{auto.cold_share:.0%} of generations waited for a start; "
            f"p95 +{auto.added_p95_s.median:.1f} s"
        )
        found.append(Goal(what, 1.0, auto.added_p50_s.median, "s", reason))
    for auto in autos:
        what = (
            f"{AUTO} {auto.trace} ({_regime(auto)}): RunPod calls per cold generation, "
            "counted at the emulator, worst seed <= 6"
        )
        measured = None if auto.calls_per_cold is None else auto.calls_per_cold.worst
        routes = ", ".join(f"/{route} {count:.1f}" for route, count in auto.calls_by_route)
        reason = f"per cold generation (mean over seeds): {routes}" if routes else "no cold one"
        lease = auto.calls_per_lease
        if lease is not None:
            reason += (
                f"; per job asked for (/run): {lease.median:.1f}, worst {lease.worst:.1f} (a "
                "worker released and asked for again within the endpoint's idle timeout comes "
                "back at once: a lease's calls, no cold generation)"
            )
        found.append(Goal(what, 6.0, measured, "calls", reason))
    for auto in autos:
        early = [(seed, calls) for seed, calls in auto.calls_per_cold_by_seed if seed <= 5]
        if auto.regime != "flashboot" or not early:
            continue
        seeds = f"seeds {early[0][0]}-{early[-1][0]}"
        what = (
            f"{AUTO} {auto.trace} ({_regime(auto)}, {seeds}, as issue 12 measured): RunPod "
            "calls per cold generation, counted at the emulator, worst seed <= 6"
        )
        reason = ", ".join(f"seed {seed} {calls:.2f}" for seed, calls in early)
        found.append(Goal(what, 6.0, max(calls for _seed, calls in early), "calls", reason))
    if forwarding is not None:
        what = "warm generation, request -> forwarded to the worker: median <= 2 ms"
        found.append(Goal(what, 2.0, forwarding.forwarded_ms, "ms"))
    return tuple(found)


def checks(runs: Sequence[Run]) -> tuple[Goal, ...]:
    """What makes the floors floors, checked on every run: none may fail."""

    def names(bad: list[Run]) -> str:
        return "; ".join(f"{r.trace}/{r.regime}/seed {r.seed}/{r.policy}" for r in bad[:5])

    beaten = [r for r in runs if r.beats_its_floor]
    quicker = [r for r in runs if not r.waits_above_floor]
    undrawn = [r for r in runs if not r.boots_as_drawn]
    left = [r for r in runs if r.workers_left]
    return (
        Goal("runs billed below the cost floor at their own waits", 0, len(beaten), "runs",
             names(beaten)),
        Goal("runs quicker than the latency floor", 0, len(quicker), "runs", names(quicker)),
        Goal("runs whose boots differ from the seeded draws the floor used", 0, len(undrawn),
             "runs", names(undrawn)),
        Goal("runs that left a worker running", 0, len(left), "runs", names(left)),
    )  # fmt: skip

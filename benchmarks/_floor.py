"""The cost floor of a trace: the GPU-seconds an all-knowing (offline) policy would be billed.

What is computed, exactly (``d_i`` = generation seconds of request ``i``, ``a_i`` = its arrival,
``C`` = mean cold start, ``F`` = mean FlashBoot start, ``Wfb`` = the emulator's FlashBoot window
of 600 s; every start costs its boot seconds, billed):

**Arrival-driven traces** (no request arrives before the previous one's generation could have
ended, i.e. ``a_{i+1} >= a_i + d_i``; interactive and sparse): no request waits, and one worker
is enough. The offline policy boots the first worker in time for the first request (``C``),
and across every gap ``g_i = a_{i+1} - (a_i + d_i)`` either keeps the worker idle (``g_i``) or
stops it at once and starts one again just in time for the next request. That restart is a
FlashBoot revival (``F``) when it begins within ``Wfb`` of the stop (``g_i - F <= Wfb``, the
emulator's rule), else a cold start (``C``)::

    floor = sum(d_i) + C + sum_i min(g_i, F if g_i - F <= Wfb else C)

**Batches** (every request arrives at once) on ``W`` workers: every worker boots once, cold
(nothing stopped recently), in parallel; the generations are shared out and each worker stops
the moment its last generation ends (no idle tail)::

    floor = sum(d_i) + W * C

``W`` is the endpoint's ``max_workers``, the parallelism the batch was configured for; the
pure cost optimum would use one worker (``sum(d_i) + C``) and make the batch ``W`` times
slower. :attr:`Floor.one_worker` gives that figure too.

Not modelled, so the floor is a little low (never flattering): per-second rounding of each
worker's bill, the seconds a worker needs between a job and the next, and draws of the start
times away from their means (the floor uses the means ``C`` and ``F`` of the configured
ranges, so it depends on the trace alone, not on the luck of one run's draws).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

__all__ = ["FLASHBOOT_WINDOW_S", "Floor", "StartCosts", "floor"]

FLASHBOOT_WINDOW_S = 600.0
"""A worker started at most this long after another stopped is a FlashBoot revival (the
emulator's ``FLASHBOOT_WINDOW_S``)."""


@dataclass(frozen=True)
class StartCosts:
    """What starting a worker costs, in billed seconds (means of the configured ranges).

    >>> StartCosts.of((60.0, 90.0), (2.0, 10.0))
    StartCosts(cold_s=75.0, flashboot_s=6.0, flashboot_window_s=600.0)

    Attributes:
        cold_s: a cold start.
        flashboot_s: a FlashBoot revival.
        flashboot_window_s: how soon after a stop a start is a revival.
    """

    cold_s: float
    flashboot_s: float
    flashboot_window_s: float = FLASHBOOT_WINDOW_S

    @classmethod
    def of(
        cls, cold_s: float | tuple[float, float], flashboot_s: float | tuple[float, float] | None
    ) -> StartCosts:
        """The mean costs of ``EndpointConfig``-style durations (a number or a (low, high)).

        ``flashboot_s`` None means no FlashBoot: a revival costs a cold start.
        """
        cold = _mean(cold_s)
        return cls(cold, cold if flashboot_s is None else _mean(flashboot_s))

    def restart_s(self, gap_s: float) -> float:
        """The cheapest start of a worker stopped ``gap_s`` before it must be ready again."""
        revival = gap_s - self.flashboot_s <= self.flashboot_window_s
        return self.flashboot_s if revival else self.cold_s


@dataclass(frozen=True)
class Floor:
    """The floor of one trace, split into its parts (GPU-seconds).

    Attributes:
        rule: ``arrivals`` or ``batch``: which formula of the module docstring applied.
        generation_s: the generation seconds, ``sum(d_i)``.
        starts_s: the boots: ``C`` (arrivals) or ``W * C`` (batch).
        gaps_s: the cheaper of idling and restarting, over every gap (0 for a batch).
        one_worker: the batch's pure cost optimum on one worker (``total`` for arrivals).
    """

    rule: str
    generation_s: float
    starts_s: float
    gaps_s: float
    one_worker: float

    @property
    def total(self) -> float:
        """The floor: generation + starts + gaps."""
        return self.generation_s + self.starts_s + self.gaps_s


def floor(
    arrivals: Sequence[float],
    durations: Sequence[float],
    costs: StartCosts,
    *,
    workers: int = 1,
) -> Floor:
    """The floor of requests arriving at ``arrivals`` that generate for ``durations`` seconds.

    >>> costs = StartCosts(cold_s=75.0, flashboot_s=6.0)
    >>> floor([0.0, 30.0], [4.0, 4.0], costs).total  # 8 s of work, one cold start, 6 s revival
    89.0
    >>> floor([0.0] * 10, [4.0] * 10, costs, workers=2).total  # 40 s of work, 2 cold starts
    190.0

    Args:
        arrivals: arrival times, ascending.
        durations: generation seconds of each request, in the same order.
        costs: what a start costs.
        workers: ``W`` of a batch (ignored for arrival-driven traces).

    Raises:
        ValueError: lengths differ, or the requests overlap without all arriving at once
            (no rule of this module covers that).
    """
    if len(arrivals) != len(durations):
        raise ValueError("one duration per arrival")
    if workers < 1:
        raise ValueError("workers must be >= 1")
    generation = sum(durations)
    if not arrivals:
        return Floor("arrivals", 0.0, 0.0, 0.0, 0.0)
    if len(arrivals) > 1 and all(at == arrivals[0] for at in arrivals):
        used = min(workers, len(arrivals))
        one = generation + costs.cold_s
        return Floor("batch", generation, used * costs.cold_s, 0.0, one)
    gaps = 0.0
    for (at, following), took in zip(pairwise(arrivals), durations[:-1], strict=True):
        gap = following - (at + took)
        if gap < 0:
            raise ValueError(
                "requests overlap: the floor covers arrival-driven traces with no overlap "
                "and batches that arrive at once"
            )
        gaps += min(gap, costs.restart_s(gap))
    total = generation + costs.cold_s + gaps
    return Floor("arrivals", generation, costs.cold_s, gaps, total)


def _mean(duration: float | tuple[float, float]) -> float:
    if isinstance(duration, tuple):
        low, high = duration
        return (low + high) / 2
    return float(duration)

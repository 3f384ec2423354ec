"""The floors of a trace: the fewest GPU-seconds and the least waiting any policy can reach.

Both are computed offline from the trace as it was drawn: the requests' arrivals ``a_i`` and
generation seconds ``d_i``, and the endpoint's start draws (``_draws``: the k-th worker started
on a seeded endpoint boots from the k-th number of its RNG, cold or revived by FlashBoot).

**Latency floor** (:func:`latency_floor`): a clairvoyant with ``W`` workers booted ahead of time
starts every generation the moment a worker is free, first come first served. Added latency
(time-to-image minus generation) is 0 for every request of the interactive and sparse traces;
in a batch, request ``k`` waits ``floor(k / W) * d``. No policy can do better: at most ``W``
workers live at once and each generates one image at a time.

**Cost floor** (:func:`cost_floor`): the GPU-seconds billed, at least, to any policy that starts
each generation within an allowance ``w_i`` of its arrival. With the latency floor's waits as
allowances it is the clairvoyant floor of the issue: a policy that makes no request wait
longer than the clairvoyant would, can release a worker and re-wake one exactly in time, and
pays a revival or a cold start only when cheaper than idling. A policy that makes requests wait
longer may bill less than that (it serves requests that queued during a boot back to back);
the floor at its own waits still bounds it, and the test checks it on every policy and seed.

Why it is a lower bound. Every worker bills its boot (its draw) plus its time after the boot,
and a generation needs a booted worker to itself (one backend, ``max_usages`` 1). So a run bills
at least ``sum(d_i)`` + every boot + the time some booted worker idles in each *gap*
``X_i = (E_i, a_{i+1})``, where ``E_i = max_{j<=i}(a_j + w_j + d_j)`` is the latest any of the
first ``i+1`` generations can end: no generation runs inside a gap. In each gap (length
``x_i``) the run either keeps a booted worker throughout (``x_i``), or it has an instant with
none, and the next generation then needs a worker whose boot covers that instant or comes
after it: a start of its own. If every start that ends a spell with no worker live in the gap
is a FlashBoot revival, each such spell lasted at most 600 s (the revival began within 600 s
of a stop, and nothing stopped during the spell), so some worker was live — billed — for at
least ``x_i - 600 m`` of the gap, with ``m`` the revivals. The cheapest way through gap ``i``
with the next unused draw ``k`` is therefore the least of

- ``x_i`` (keep a worker),
- ``cold(k)`` (a cold start),
- ``max(x_i - 600 m, flash(k) + ... + flash(k+m-1))`` (``m`` revivals chained through the
  gap; only with FlashBoot granted),

and any start the policy makes beyond those (a surplus worker) only consumes a draw: it costs
at least a revival of that draw. A dynamic programme over (gap, draws consumed) takes the
cheapest path; the first start is cold (nothing stopped before it). Separately, a moment
with ``c`` workers live needs ``c`` cold starts (each revival uses up an earlier stop, and a
stopped worker is not live), so the floor is also at least ``sum(d_i)`` + the ``c`` cheapest
cold starts the draws allow, ``c`` the workers the allowances force at once; the floor is the
larger of the two bounds.

Not modelled, so the floor stays low: per-second rounding of each worker's bill, RunPod's queue
delay before a start, the time between a worker's job and its generation.

>>> from benchmarks._draws import StartDraws
>>> fixed = StartDraws(cold_s=(75.0, 75.0), flashboot_s=None, seed=1)
>>> cost_floor([0.0, 30.0, 2000.0], [4.0] * 3, fixed).total_s  # idle 26 s, then a cold start
188.0
>>> latency_floor([0.0] * 5, [4.0] * 5, workers=2)
(0.0, 0.0, 4.0, 4.0, 8.0)
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from ._draws import StartDraws

__all__ = ["Floor", "concurrency_needed", "cost_floor", "latency_floor"]

_MAX_DRAWS: Final = 4096
"""Never plan with more draws than this (only reached if a revival could cost 0 s)."""


@dataclass(frozen=True)
class Floor:
    """The cost floor of one trace, split into its parts (GPU-seconds).

    Attributes:
        generation_s: ``sum(d_i)``.
        boots_s: the boots of the cheapest path (cold and revived).
        idle_s: the seconds a worker idles through the gaps the path keeps it for, plus the
            live time a revival chain cannot avoid.
        cold_starts: cold starts of the cheapest path.
        revivals: FlashBoot revivals of the cheapest path (surplus draws included).
        workers: workers the allowances force to be live at once.
        bound: which bound won: ``gaps`` (the path through the gaps) or ``workers`` (the cold
            starts that many workers at once need).
    """

    generation_s: float
    boots_s: float
    idle_s: float
    cold_starts: int
    revivals: int
    workers: int
    bound: str

    @property
    def total_s(self) -> float:
        """The floor: generation + boots + idle."""
        return self.generation_s + self.boots_s + self.idle_s


def latency_floor(
    arrivals: Sequence[float], durations: Sequence[float], *, workers: int
) -> tuple[float, ...]:
    """Each request's least added latency (s): ``workers`` always-ready workers, first come first
    served, each generation started the moment a worker is free."""
    _check(arrivals, durations)
    if workers < 1:
        raise ValueError("workers must be >= 1")
    free_at = [-math.inf] * workers
    waits = []
    for at, took in zip(arrivals, durations, strict=True):
        soonest = heapq.heappop(free_at)
        start = max(at, soonest)
        waits.append(start - at)
        heapq.heappush(free_at, start + took)
    return tuple(waits)


def concurrency_needed(
    arrivals: Sequence[float], durations: Sequence[float], waits: Sequence[float]
) -> int:
    """The fewest workers that can start every generation ``i`` within ``[a_i, a_i + w_i]``.

    A lower bound: for any window ``[r, D]``, the requests that arrive at ``r`` or later and must
    start by ``D`` all start inside it, and one worker starts at most
    ``floor((D - r) / d_min) + 1`` generations in it.
    """
    _check(arrivals, durations)
    if not arrivals:
        return 0
    shortest = min(durations)
    deadlines = sorted({at + wait for at, wait in zip(arrivals, waits, strict=True)})
    needed = 1
    for release in sorted(set(arrivals)):
        due = sorted(at + wait for at, wait in zip(arrivals, waits, strict=True) if at >= release)
        count = 0
        for deadline in deadlines:
            if deadline < release:
                continue
            while count < len(due) and due[count] <= deadline:
                count += 1
            per_worker = math.floor((deadline - release) / shortest + 1e-9) + 1 if shortest else 1
            needed = max(needed, math.ceil(count / per_worker) if shortest else count)
    return needed


def cost_floor(
    arrivals: Sequence[float],
    durations: Sequence[float],
    draws: StartDraws,
    *,
    waits: Sequence[float] | None = None,
) -> Floor:
    """The least GPU-seconds of any run that starts generation ``i`` by ``a_i + waits[i]``.

    ``waits`` None: 0 for every request (a clairvoyant that never makes anyone wait; give
    :func:`latency_floor`'s waits for a batch that cannot all start at once).

    Raises:
        ValueError: lengths differ, arrivals are not ascending, or a wait is negative.
    """
    _check(arrivals, durations)
    allowed = tuple(waits) if waits is not None else (0.0,) * len(arrivals)
    if len(allowed) != len(arrivals) or any(wait < 0 for wait in allowed):
        raise ValueError("one wait >= 0 per arrival")
    generation = float(sum(durations))
    if not arrivals:
        return Floor(0.0, 0.0, 0.0, 0, 0, 0, "gaps")
    gaps = [gap for gap in _gaps(arrivals, durations, allowed) if gap > 0]
    workers = concurrency_needed(arrivals, durations, allowed)
    by_gaps = _through_gaps(gaps, draws)
    by_workers = _cold_starts(workers, draws)
    if by_workers[0] > by_gaps[0] + by_gaps[1]:
        boots, cold, revived = by_workers
        return Floor(generation, boots, 0.0, cold, revived, workers, "workers")
    boots, idle, cold, revived = by_gaps
    return Floor(generation, boots, idle, cold, revived, workers, "gaps")


def _check(arrivals: Sequence[float], durations: Sequence[float]) -> None:
    if len(arrivals) != len(durations):
        raise ValueError("one duration per arrival")
    if any(later < earlier for earlier, later in itertools.pairwise(arrivals)):
        raise ValueError("arrivals must be ascending")


def _gaps(
    arrivals: Sequence[float], durations: Sequence[float], waits: Sequence[float]
) -> list[float]:
    """Length of each gap ``(E_i, a_{i+1})`` in which no generation can run (0 if none)."""
    found = []
    latest_end = -math.inf
    for index in range(len(arrivals) - 1):
        latest_end = max(latest_end, arrivals[index] + waits[index] + durations[index])
        found.append(max(0.0, arrivals[index + 1] - latest_end))
    return found


_Parts = tuple[float, float, int, int]
"""A path's (boots, idle, cold starts, revivals)."""


class _Cheapest:
    """The cheapest path known to each number of draws used."""

    def __init__(self, limit: int) -> None:
        self.totals = [math.inf] * (limit + 1)
        self.parts: list[_Parts] = [(0.0, 0.0, 0, 0)] * (limit + 1)

    def offer(self, used: int, total: float, parts: _Parts) -> None:
        if total < self.totals[used]:
            self.totals[used], self.parts[used] = total, parts


def _through_gaps(gaps: Sequence[float], draws: StartDraws) -> tuple[float, float, int, int]:
    """The cheapest path's (boots, idle, cold starts, revivals) through ``gaps``.

    ``totals[k]`` is the cheapest cost so far of a path that used draws ``0..k-1``;
    ``parts[k]`` its (boots, idle, cold starts, revivals).
    """
    window = draws.flashboot_window_s
    revive = draws.flashboot_s is not None
    limit = _draw_limit(gaps, draws)
    cold = [draws.cold(index) for index in range(limit)]
    flash = [draws.flashboot(index) for index in range(limit)]
    inf = math.inf
    totals = [inf] * (limit + 1)
    parts: list[_Parts] = [(0.0, 0.0, 0, 0)] * (limit + 1)
    totals[1], parts[1] = cold[0], (cold[0], 0.0, 1, 0)
    lowest = 1
    for gap in gaps:
        if revive:  # surplus starts (each takes a draw) before this gap's own
            for used in range(lowest, limit):
                if totals[used] + flash[used] < totals[used + 1]:
                    boots, idle, colds, revived = parts[used]
                    totals[used + 1] = totals[used] + flash[used]
                    parts[used + 1] = (boots + flash[used], idle, colds, revived + 1)
        following = _Cheapest(limit)
        offer = following.offer
        links_max = max(1, math.ceil(gap / window))
        for used in range(lowest, limit + 1):
            total = totals[used]
            if total == inf:
                continue
            boots, idle, colds, revived = parts[used]
            offer(used, total + gap, (boots, idle + gap, colds, revived))
            if used == limit:
                continue
            restart = cold[used]
            offer(used + 1, total + restart, (boots + restart, idle, colds + 1, revived))
            if not revive:
                continue
            chained = 0.0
            for links in range(1, min(links_max, limit - used) + 1):
                chained += flash[used + links - 1]
                cost = max(gap - window * links, chained)
                path = (boots + chained, idle + cost - chained, colds, revived + links)
                offer(used + links, total + cost, path)
        totals, parts = following.totals, following.parts
        lowest = next(used for used, total in enumerate(totals) if total < inf)
    best = min(range(limit + 1), key=totals.__getitem__)
    boots, idle, colds, revived = parts[best]
    return boots, idle, colds, revived


def _draw_limit(gaps: Sequence[float], draws: StartDraws) -> int:
    """Draws a cheapest path can use: one per start through the gaps, plus the surplus starts
    that could pay off (each costs at least the revival range's low end, and moves every later
    start's draw by one, which gains at most a range's width per start)."""
    window = draws.flashboot_window_s
    starts = 1 + sum(max(1, math.ceil(gap / window)) for gap in gaps)
    if draws.flashboot_s is None:
        return min(starts, _MAX_DRAWS)
    cold_low, cold_high = draws.cold_s
    flash_low, flash_high = draws.flashboot_s
    widest = max(cold_high - cold_low, flash_high - flash_low)
    surplus = math.ceil(widest * starts / flash_low) if flash_low > 0 else _MAX_DRAWS
    return min(starts + surplus, _MAX_DRAWS)


def _cold_starts(workers: int, draws: StartDraws) -> tuple[float, int, int]:
    """The cheapest (boots, cold starts, revivals) that include ``workers`` cold starts, the
    first start cold, each start taking the next draw (the rest revived at best)."""
    if workers <= 0:
        return 0.0, 0, 0
    if draws.flashboot_s is None:
        return sum(draws.cold(index) for index in range(workers)), workers, 0
    best = (math.inf, workers, 0)
    premiums: list[float] = []  # the workers-1 smallest (cold - revival) after the first, negated
    premium_sum = 0.0
    revivals = 0.0
    limit = min(_MAX_DRAWS, workers + _draw_limit([], draws) + 64)
    for index in range(limit):
        if index == 0:
            base = draws.cold(0)
        else:
            revivals += draws.flashboot(index)
            extra = draws.cold(index) - draws.flashboot(index)
            heapq.heappush(premiums, -extra)
            premium_sum += extra
            if len(premiums) > workers - 1:
                premium_sum += heapq.heappop(premiums)
        if index + 1 >= workers:
            total = base + revivals + premium_sum
            if total < best[0]:
                best = (total, workers, index + 1 - workers)
    return best

"""The idle window: how long a free warm worker is kept before it is released.

A warm worker costs its idle seconds; releasing it costs the next request a start. With
``IdleTimeoutSec = "auto"`` the window follows what the endpoint shows:

- **Before any idle spell was seen** it is the endpoint's measured cold start, the mean of the
  recent ones (60 s before the first): the ski-rental break-even, so whatever the gap ``g``
  before the next request, the idle-plus-start GPU-seconds paid are at most twice the best
  possible, ``min(g, cold start)`` (:meth:`IdleWindow.cost_of_gap`). A FlashBoot revival
  (a start under half the longest cold start) is luck RunPod does not promise: it is kept
  apart and never shrinks this window.
- **Once gaps are seen** (:meth:`IdleWindow.observe_gap`: how long the endpoint had no work
  before a generation came, whether or not a worker was still warm), the window is the one
  that would have cost the fewest GPU-seconds over those gaps, each restart priced at what
  restarts cost lately (revivals when the endpoint grants them, else cold starts), and never
  longer than the break-even above. Two guards keep the latency goal: when most gaps are
  shorter than the break-even (requests come in bursts), the window still catches at least 3
  in 4 of them warm; and it is learnt only from :data:`MIN_GAPS` gaps on.

So a trace of requests ten minutes apart learns to release at once (no window would have
caught the next request), a user's session keeps its worker through the pauses it shows, and
a revival that costs 6 s where a cold start costs 75 s shortens the window only as far as the
latency guard allows.

That window is the last free worker's. A worker free beside it is *surplus*: it serves again
only if the endpoint again needs as many workers at once. :class:`SurplusWindow` learns that
from the endpoint's demand (how many workers its generations need at once): until the demand
has fallen and risen back to two workers or more, nothing shows a surplus worker will be needed
again (a batch that drained), and it is released at once; from then on it is kept like the last
one, and from :data:`MIN_GAPS` such gaps on, for the window that would have cost least over
them.
"""

from __future__ import annotations

import statistics
from collections import deque
from typing import Final, Literal

__all__ = [
    "DEFAULT_COLD_START_S",
    "LONGEST_TYPICAL_COLD_START_S",
    "MIN_GAPS",
    "IdleWindow",
    "SurplusWindow",
]

DEFAULT_COLD_START_S: Final = 60.0
"""The cold start assumed by ``auto`` before the endpoint's first one was measured."""
LONGEST_TYPICAL_COLD_START_S: Final = 90.0
"""The longest ordinary cold start (a container and SwarmUI start in 60-90 s): what a generation
that finds no warm worker is told to expect, and what a start is late after, before the
endpoint's first one was measured, so an ordinary first boot raises no alarm."""
MIN_GAPS: Final = 5
"""Gaps needed before ``auto`` learns a window from them."""
WARM_SHARE: Final = 0.75
"""When requests come in bursts, at least this share of them must find a warm worker."""
_REVIVAL_FRACTION: Final = 0.5
_GAPS: Final = 64


class IdleWindow:
    """The idle window of one endpoint, fixed or following what the endpoint shows.

    >>> window = IdleWindow("auto")
    >>> window.seconds  # nothing measured yet
    60.0
    >>> window.observe_cold_start(80.0); window.observe_cold_start(6.0)
    >>> window.seconds, window.cold_start_s  # the 6 s start was a FlashBoot revival
    (80.0, 80.0)
    >>> for _ in range(5):
    ...     window.observe_gap(600.0)  # a request every ten minutes
    >>> window.seconds  # no window up to the break-even would have caught one: release at once
    0.0
    >>> IdleWindow(30.0).seconds
    30.0

    Attributes:
        setting: the ``IdleTimeoutSec`` value (seconds, or ``"auto"``).
    """

    def __init__(
        self,
        setting: float | Literal["auto"],
        *,
        assumed_cold_start_s: float = DEFAULT_COLD_START_S,
        history: int = 10,
    ) -> None:
        if setting != "auto" and not 0 <= setting < float("inf"):
            raise ValueError("the idle window must be >= 0 seconds or 'auto'")
        if history < 1 or not assumed_cold_start_s > 0:
            raise ValueError("history must be >= 1 and the assumed cold start > 0")
        self.setting = setting
        self._assumed = assumed_cold_start_s
        self._cold: deque[float] = deque(maxlen=history)
        self._revivals: deque[float] = deque(maxlen=history)
        self._restarts: deque[bool] = deque(maxlen=history)  # True: a revival
        self._gaps: deque[float] = deque(maxlen=_GAPS)

    def __repr__(self) -> str:
        return f"IdleWindow({self.setting!r}, seconds={self.seconds:g})"

    def observe_cold_start(self, seconds: float) -> None:
        """Record one measured start (wake-up request to worker ready) of the endpoint.

        A start under half the longest cold start seen is taken for a FlashBoot revival.
        """
        if seconds < 0:
            return
        revival = bool(self._cold) and seconds < _REVIVAL_FRACTION * max(self._cold)
        (self._revivals if revival else self._cold).append(seconds)
        self._restarts.append(revival)

    def observe_gap(self, seconds: float) -> None:
        """Record one gap: a generation came ``seconds`` after the endpoint's last busy seat
        freed (whether a worker was still warm for it or not)."""
        if seconds >= 0:
            self._gaps.append(seconds)

    @property
    def cold_start_s(self) -> float:
        """The endpoint's cold start: the longest of the recent ones, or before one the longest
        ordinary one (what a generation that finds no warm worker should expect to wait)."""
        return max(self._cold) if self._cold else max(self._assumed, LONGEST_TYPICAL_COLD_START_S)

    @property
    def break_even_s(self) -> float:
        """The ski-rental window: the mean recent cold start (the assumption before one)."""
        return statistics.fmean(self._cold) if self._cold else self._assumed

    @property
    def restart_s(self) -> float:
        """What releasing a worker costs the next request, as restarts went lately: the mean
        revival if the endpoint granted one among its recent restarts, else the break-even."""
        if self._revivals and any(self._restarts):
            return statistics.fmean(self._revivals)
        return self.break_even_s

    @property
    def seconds(self) -> float:
        """How long a free warm worker is kept now."""
        if self.setting != "auto":
            return float(self.setting)
        if len(self._gaps) < MIN_GAPS:
            return self.break_even_s
        return self._learnt(self.break_even_s, self.restart_s)

    def _learnt(self, ceiling: float, restart: float) -> float:
        """The window, up to ``ceiling``, that would have cost least over the recent gaps."""
        return _cheapest_window(list(self._gaps), ceiling, restart)

    @staticmethod
    def cost_of_gap(gap_s: float, window_s: float, cold_start_s: float) -> float:
        """GPU-seconds paid between two requests ``gap_s`` apart, beyond the generations.

        Within the window the worker idles through the gap; past it, it idled the whole window
        and the next request pays a cold start.
        """
        return gap_s if gap_s <= window_s else window_s + cold_start_s


def _cheapest_window(gaps: list[float], ceiling: float, restart: float) -> float:
    """The window, up to ``ceiling``, that would have cost least over ``gaps``, each restart
    costing ``restart`` seconds; when most gaps are shorter than the ceiling (bursts), one that
    still catches :data:`WARM_SHARE` of them warm."""
    short = sorted(gap for gap in gaps if gap <= ceiling)
    bursty = len(short) >= WARM_SHARE * len(gaps)
    best, best_cost = ceiling, float("inf")
    for window in (0.0, *short, ceiling):
        if bursty and sum(gap <= window for gap in gaps) < WARM_SHARE * len(gaps):
            continue
        cost = sum(IdleWindow.cost_of_gap(gap, window, restart) for gap in gaps)
        if cost < best_cost - 1e-9:
            best, best_cost = window, cost
    return best


class SurplusWindow:
    """How long a surplus free worker is kept: one free beside a more recently used one.

    It learns from the endpoint's demand, the workers its generations need at once (seats
    taken plus generations in line, over a worker's seats; at most ``MaxWorkers``). A *surplus
    gap* of rank ``r >= 2`` runs from the moment the demand fell below ``r`` to the moment it
    came back to ``r``: what an ``r``-th worker kept free would have idled.

    >>> surplus = SurplusWindow(IdleWindow(120.0), max_workers=3)
    >>> for at, workers in ((0, 3), (10, 1)):  # a burst drained
    ...     surplus.observe_demand(workers, at)
    >>> surplus.seconds  # nothing shows a second worker will be needed again
    0.0
    >>> surplus.observe_demand(2, 40.0)  # it was, 30 s later
    >>> surplus.gaps, surplus.seconds  # from now on surplus workers keep the whole window
    ((30.0,), 120.0)

    Args:
        idle: the endpoint's idle window (the ceiling, the break-even and the restart cost).
        max_workers: the most workers held at once (demand beyond them is not counted).
        handoff_s: a seat freed and taken again within this long was handed over, not left
            idle (replicas sharing a pool see the others' lines only when they take a seat):
            no gap is counted, and a surplus worker is kept at least this long.
    """

    def __init__(self, idle: IdleWindow, *, max_workers: int, handoff_s: float = 0.0) -> None:
        self._idle = idle
        self._max_workers = max(1, max_workers)
        self._handoff_s = handoff_s
        self._level = 0
        self._fell_at: dict[int, float] = {}  # rank -> when the demand fell below it
        self._gaps: deque[float] = deque(maxlen=_GAPS)

    def __repr__(self) -> str:
        return f"SurplusWindow(seconds={self.seconds:g}, gaps={len(self._gaps)})"

    @property
    def gaps(self) -> tuple[float, ...]:
        """The surplus gaps seen lately, oldest first."""
        return tuple(self._gaps)

    def observe_demand(self, workers: int, now: float) -> None:
        """The endpoint now needs ``workers`` workers at once."""
        level = min(max(0, workers), self._max_workers)
        if level < self._level:
            for rank in range(max(2, level + 1), self._level + 1):
                self._fell_at[rank] = now
        elif level > self._level:
            for rank in range(max(2, self._level + 1), level + 1):
                fell_at = self._fell_at.pop(rank, None)
                if fell_at is not None and now - fell_at >= self._handoff_s:
                    self._gaps.append(now - fell_at)
        self._level = level

    @property
    def seconds(self) -> float:
        """How long a surplus free worker is kept now (never longer than the last one)."""
        window = self._idle.seconds
        if not self._gaps:
            learnt = 0.0
        elif len(self._gaps) < MIN_GAPS:
            learnt = window
        else:
            learnt = _cheapest_window(
                list(self._gaps), self._idle.break_even_s, self._idle.restart_s
            )
        return min(window, max(learnt, self._handoff_s))

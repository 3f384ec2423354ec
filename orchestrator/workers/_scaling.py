"""When to scale out: a new lease only for a generation it would serve sooner than a held seat."""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable

__all__ = ["new_leases_needed"]


def new_leases_needed(
    *,
    now: float,
    waiting: int,
    seats_free_at: Iterable[float],
    cold_start_s: float,
    generation_s: float | None,
) -> int:
    """How many new leases the ``waiting`` generations need, served in arrival order.

    Each waiting generation takes the seat that frees first: a free seat (``now``), a busy one
    when its generation is expected to end, a booting lease's when it is expected ready. A new
    lease would be ready ``cold_start_s`` from now; it is needed only for a generation that no
    seat would reach sooner. A seat serves one generation after another, ``generation_s``
    apart (None: unknown yet, so a busy seat is not counted on).

    A second request arriving while the first one's worker boots waits for that worker rather
    than booting a second one that would arrive later anyway:

    >>> new_leases_needed(now=40, waiting=2, seats_free_at=[75], cold_start_s=75, generation_s=4)
    0

    Three generations queued behind a warm worker that finishes one every 4 s need no new
    worker (it would take 75 s to come); with nothing held, each needs one (up to MaxWorkers,
    which the caller applies):

    >>> new_leases_needed(now=0, waiting=3, seats_free_at=[0], cold_start_s=75, generation_s=4)
    0
    >>> new_leases_needed(now=0, waiting=3, seats_free_at=[], cold_start_s=75, generation_s=4)
    3
    >>> new_leases_needed(now=0, waiting=3, seats_free_at=[], cold_start_s=75, generation_s=None)
    3
    """
    seats = [t for t in seats_free_at if math.isfinite(t)]
    heapq.heapify(seats)
    new_seat_at = now + cold_start_s
    new = 0
    for _ in range(waiting):
        free_at = seats[0] if seats else math.inf
        if free_at > new_seat_at:
            new += 1
            taken = new_seat_at
        else:
            taken = heapq.heappop(seats)
        if generation_s is not None:
            heapq.heappush(seats, max(taken, now) + generation_s)
    return new

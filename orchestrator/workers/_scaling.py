"""When to scale out: a new worker only for a generation no seat held or coming serves sooner."""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = ["late_after", "servable_before"]


def late_after(expected_s: float) -> float:
    """How long something expected to take ``expected_s`` may run before it is late: well past
    its expected time (a quarter more, and at least 20 s more)."""
    return max(expected_s * 1.25, expected_s + 20.0)


def servable_before(
    horizon: float, seats_free_at: Iterable[tuple[float, int]], generation_s: float | None
) -> int:
    """How many generations in line the seats serve, one after another, by ``horizon``.

    The line is served in order, each generation taking the seat that frees first: a free seat
    (now), a busy one when its generation is expected to end, a coming worker's when it is
    expected ready; ``seats_free_at`` gives (when, how many seats) pairs. A new worker asked
    for now would be ready at ``horizon``, so it is needed only for the generations beyond what
    the seats serve by then. A seat serves one generation
    after another, ``generation_s`` apart (None: unknown yet, so each seat serves one). A seat
    free at ``t <= horizon`` serves ``1 + floor((horizon - t) / generation_s)`` generations by
    then: the count is a sum over the seats, whatever the length of the line.

    A second request arriving while the first one's worker boots waits for that worker rather
    than booting a second one that would arrive later anyway:

    >>> servable_before(115, [(115, 1)], 4)
    1

    A warm worker that finishes one every 4 s serves 19 generations before a worker asked for
    now could (75 s); with nothing held, none:

    >>> servable_before(75, [(0, 1)], 4), servable_before(75, [], 4)
    (19, 0)
    >>> servable_before(75, [(0, 2), (math.inf, 1)], None)
    2
    """
    served = 0
    for free_at, seats in seats_free_at:
        if free_at > horizon or seats <= 0:
            continue
        if generation_s is None or generation_s <= 0:
            served += seats
        else:
            served += seats * (1 + math.floor((horizon - free_at) / generation_s + 1e-9))
    return served

"""Request traces for the lease-policy benchmark: when each generation request arrives.

Every generator is deterministic: the same arguments (and seed) give the same trace. Times are
seconds from the start of the trace (loop time once replayed).

>>> [round(t) for t in sparse(count=3).arrivals]
[0, 600, 1200]
>>> batch(count=4).arrivals
(0.0, 0.0, 0.0, 0.0)
>>> interactive(seed=1) == interactive(seed=1)
True
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import pairwise

__all__ = ["Trace", "batch", "interactive", "sparse"]


@dataclass(frozen=True)
class Trace:
    """A named sequence of request arrivals.

    Attributes:
        name: short name for tables (``interactive``, ``batch``, ``sparse``).
        arrivals: arrival time of each request in seconds from the trace start, ascending.
        description: one line saying how the trace was made.
    """

    name: str
    arrivals: tuple[float, ...]
    description: str = ""

    def __post_init__(self) -> None:
        if any(later < earlier for earlier, later in pairwise(self.arrivals)):
            raise ValueError("arrivals must be in ascending order")
        if any(at < 0 for at in self.arrivals):
            raise ValueError("arrivals must be >= 0")

    def __len__(self) -> int:
        return len(self.arrivals)

    @property
    def span_s(self) -> float:
        """Seconds from the first arrival to the last (0 for an empty trace)."""
        return self.arrivals[-1] - self.arrivals[0] if self.arrivals else 0.0


def interactive(
    *,
    seed: int = 1,
    sessions: int = 4,
    session_s: float = 600.0,
    think_s: tuple[float, float] = (20.0, 90.0),
    away_s: tuple[float, float] = (1200.0, 2400.0),
) -> Trace:
    """A user who generates in bursts: sessions of requests, long breaks between them.

    In each session the user asks for an image, then again after a pause drawn uniformly from
    ``think_s``, as long as the next request still falls within ``session_s`` of the session's
    first one. After a session's last request the user is away for a time drawn from ``away_s``,
    then the next session begins. Draws come from ``random.Random(seed)``.

    Args:
        seed: the RNG seed.
        sessions: how many sessions.
        session_s: length of a session (its requests arrive within it).
        think_s: (low, high) seconds between two requests of a session.
        away_s: (low, high) seconds from a session's last request to the next session.
    """
    if sessions < 0 or session_s < 0:
        raise ValueError("sessions and session_s must be >= 0")
    _check_range(think_s, "think_s", positive=True)
    _check_range(away_s, "away_s", positive=True)
    rng = random.Random(seed)
    arrivals: list[float] = []
    start = 0.0
    for _ in range(sessions):
        at = start
        while at <= start + session_s:
            arrivals.append(at)
            at += rng.uniform(*think_s)
        start = arrivals[-1] + rng.uniform(*away_s)
    description = (
        f"{sessions} sessions of {session_s / 60:g} min, a request every "
        f"{think_s[0]:g}-{think_s[1]:g} s, away {away_s[0] / 60:g}-{away_s[1] / 60:g} min "
        f"(seed {seed})"
    )
    return Trace("interactive", tuple(arrivals), description)


def batch(*, count: int = 200) -> Trace:
    """``count`` requests submitted at once (time 0)."""
    if count < 0:
        raise ValueError("count must be >= 0")
    return Trace("batch", (0.0,) * count, f"{count} requests at once")


def sparse(*, count: int = 12, every_s: float = 600.0) -> Trace:
    """``count`` requests, one every ``every_s`` seconds, the first at time 0."""
    if count < 0 or every_s <= 0:
        raise ValueError("count must be >= 0 and every_s > 0")
    arrivals = tuple(index * every_s for index in range(count))
    return Trace("sparse", arrivals, f"{count} requests, one every {every_s / 60:g} min")


def _check_range(bounds: tuple[float, float], name: str, *, positive: bool) -> None:
    low, high = bounds
    if not low <= high or (positive and low <= 0):
        raise ValueError(f"{name} needs 0 < low <= high")

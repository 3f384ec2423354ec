"""Backoff jitter on tape: the recorder notes each random delay, the replay draws them again.

:class:`~orchestrator.RetryPolicy` only ever calls ``rng.uniform(low, high)``; these two
``random.Random`` subclasses stand in for its ``rng``.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

__all__ = ["RecordingRandom", "ReplayedRandom"]


class RecordingRandom(random.Random):
    """Draws from ``inner`` and keeps every ``uniform()`` value in :attr:`drawn`.

    >>> rng = RecordingRandom(random.Random(0))
    >>> value = rng.uniform(0.25, 0.5)
    >>> rng.drawn == [value]
    True
    """

    def __init__(self, inner: random.Random) -> None:
        super().__init__()
        self._inner = inner
        self.drawn: list[float] = []

    def uniform(self, a: float, b: float) -> float:
        """A value in [a, b] from the wrapped generator, recorded."""
        value = self._inner.uniform(a, b)
        self.drawn.append(value)
        return value


class ReplayedRandom(random.Random):
    """Gives back recorded ``uniform()`` values in order, then seeded ones.

    A recorded value outside the asked range (the replay diverged) is clamped into it.

    >>> rng = ReplayedRandom([0.3])
    >>> rng.uniform(0.25, 0.5), rng.uniform(0.25, 0.5) == ReplayedRandom([]).uniform(0.25, 0.5)
    (0.3, True)
    """

    def __init__(self, values: Iterable[float]) -> None:
        super().__init__(0)
        self._values = list(values)

    def uniform(self, a: float, b: float) -> float:
        """The next recorded value (clamped into [a, b]), or a seeded draw once they ran out."""
        if self._values:
            low, high = min(a, b), max(a, b)
            return min(high, max(low, self._values.pop(0)))
        return super().uniform(a, b)

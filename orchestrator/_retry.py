"""Retry with exponential backoff that honours ``Retry-After``, sleeping on the loop clock."""

from __future__ import annotations

import email.utils
import random
from dataclasses import dataclass, field

__all__ = ["RetryPolicy", "parse_retry_after"]


def parse_retry_after(value: str | None, *, now_epoch: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), or None.

    >>> parse_retry_after("3")
    3.0
    >>> parse_retry_after("soon") is None
    True
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if now_epoch is None:
            return None
        seconds = when.timestamp() - now_epoch
    return max(0.0, seconds)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failed idempotent call is tried again.

    >>> policy = RetryPolicy(attempts=4, base_delay=0.5, max_delay=8.0)
    >>> policy.delay(1, retry_after=None, rng=random.Random(0)) <= 1.0
    True
    >>> policy.delay(1, retry_after=5.0)
    5.0

    Attributes:
        attempts: total tries including the first (1 = no retry).
        base_delay: the first backoff in seconds; it doubles each retry.
        max_delay: the cap of one backoff (a larger ``Retry-After`` is honoured up to
            ``max_retry_after``).
        max_retry_after: the longest ``Retry-After`` that is waited for; longer hints give up.
    """

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be >= 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("delays must be >= 0")

    def delay(
        self, retry_number: int, *, retry_after: float | None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait before retry number ``retry_number`` (1-based).

        A server's ``Retry-After`` wins; otherwise full-jitter exponential backoff.
        """
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        ceiling = min(self.max_delay, self.base_delay * (2 ** (retry_number - 1)))
        return (rng or self.rng).uniform(ceiling / 2, ceiling)

    def gives_up_on(self, retry_after: float | None) -> bool:
        """Whether a ``Retry-After`` hint is too long to wait for."""
        return retry_after is not None and retry_after > self.max_retry_after


NO_RETRY = RetryPolicy(attempts=1)

"""Per-route rate limits of the emulated RunPod API: token buckets on the loop clock (§2).

RunPod limits requests per user and per endpoint; a request over the limit gets HTTP 429. The
emulator keeps one bucket per (API key, route) of each endpoint. ``status-sync`` shares the
``status`` bucket; ``retry`` and ``health`` have no published limit and are not limited.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import anyio

__all__ = ["RateLimiter", "RateLimits", "retry_after_header"]


@dataclass(frozen=True)
class RateLimits:
    """Requests allowed per route in each ``window_s`` (defaults: runpod-api.md §2 table).

    A bucket holds up to the route's limit and refills at ``limit / window_s`` per second, so a
    burst of the whole limit passes and then requests pass at the refill rate.

    >>> RateLimits(purge_queue=2).limit_for("purge-queue")
    2
    >>> RateLimits().limit_for("health") is None
    True

    Attributes:
        run: ``/run`` requests per window.
        runsync: ``/runsync`` requests per window.
        status: ``/status`` and ``/status-sync`` requests per window.
        stream: ``/stream`` requests per window.
        cancel: ``/cancel`` requests per window.
        purge_queue: ``/purge-queue`` requests per window.
        window_s: the window, in seconds.
    """

    run: int = 1000
    runsync: int = 2000
    status: int = 2000
    stream: int = 2000
    cancel: int = 100
    purge_queue: int = 2
    window_s: float = 10.0

    def __post_init__(self) -> None:
        limits = (self.run, self.runsync, self.status, self.stream, self.cancel, self.purge_queue)
        if any(limit < 1 for limit in limits) or not self.window_s > 0:
            raise ValueError("rate limits need every limit >= 1 and window_s > 0")

    def limit_for(self, route: str) -> int | None:
        """The limit of ``route`` per window, None when the route is not limited."""
        limits = {
            "run": self.run,
            "runsync": self.runsync,
            "status": self.status,
            "status-sync": self.status,
            "stream": self.stream,
            "cancel": self.cancel,
            "purge-queue": self.purge_queue,
        }
        return limits.get(route)


class RateLimiter:
    """The token buckets of one endpoint; ``admit`` answers None (pass) or a Retry-After."""

    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}  # -> (tokens, at)

    def admit(self, key: str, route: str) -> float | None:
        """Take a token for ``route``; None if granted, else seconds until one is available."""
        limit = self.limits.limit_for(route)
        if limit is None:
            return None
        bucket = "status" if route == "status-sync" else route
        rate = limit / self.limits.window_s
        now = anyio.current_time()
        tokens, at = self._buckets.get((key, bucket), (float(limit), now))
        tokens = min(float(limit), tokens + (now - at) * rate)
        if tokens >= 1.0:
            self._buckets[(key, bucket)] = (tokens - 1.0, now)
            return None
        self._buckets[(key, bucket)] = (tokens, now)
        return (1.0 - tokens) / rate


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` as whole seconds, rounded up (at least 1)."""
    return str(max(1, math.ceil(seconds)))

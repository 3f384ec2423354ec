"""Scripted faults of the emulated RunPod API."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Final

__all__ = ["ROUTES", "EndpointFaults", "HttpFault"]

ROUTES: Final = frozenset({"run", "runsync", "status", "stream", "cancel", "health", "purge-queue"})


@dataclass(frozen=True)
class HttpFault:
    """One scripted answer: ``status`` with a JSON error body (and ``Retry-After`` when set)."""

    status: int
    retry_after: float | None


class EndpointFaults:
    """A fault script for one endpoint's API, consumed request by request.

    >>> faults = EndpointFaults()
    >>> faults.http_status("run", 503, times=2)
    >>> [faults.take("run").status, faults.take("run").status, faults.take("run")]
    [503, 503, None]
    """

    def __init__(self) -> None:
        self._pending: dict[str, deque[HttpFault]] = {}

    def http_status(
        self, route: str, status: int, *, times: int = 1, retry_after: float | None = None
    ) -> None:
        """Answer the next ``times`` requests on ``route`` with ``status`` instead of serving them.

        ``route`` is one of ``run``, ``runsync``, ``status``, ``stream``, ``cancel``,
        ``health``, ``purge-queue``. Scripts for a route queue up in the order given.
        """
        if route not in ROUTES:
            raise ValueError(f"unknown route {route!r}; expected one of {sorted(ROUTES)}")
        if not 100 <= status <= 599 or times < 1:
            raise ValueError("need an HTTP status in 100..599 and times >= 1")
        fault = HttpFault(status, retry_after)
        self._pending.setdefault(route, deque()).extend([fault] * times)

    def take(self, route: str) -> HttpFault | None:
        """The fault scripted for the next request on ``route``, consuming it (None = serve)."""
        pending = self._pending.get(route)
        return pending.popleft() if pending else None

    def clear(self) -> None:
        """Forget every scripted fault."""
        self._pending.clear()

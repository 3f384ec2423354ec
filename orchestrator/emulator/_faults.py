"""Scripted faults of the emulated RunPod API and of its workers.

Route faults are consumed request by request, in the order scripted, one per request:

- :class:`HttpFault`: answer with an HTTP error status (and ``Retry-After``);
- :class:`Latency`: wait, then serve the request normally;
- :class:`DropConnection`: close the socket without an answer;
- :class:`DropAfterAnswer`: serve the request, then close the socket before the answer;
- :class:`MalformedBody`: answer 200 with truncated, unparseable JSON.

Endpoint-wide faults: no host capacity (wanted workers stay throttled, jobs stay IN_QUEUE) and
workers dying mid-job (the job FAILS, the worker and its SwarmUI stop).

Lease faults of the v2 worker image (worker-protocols.md v2), consumed lease job by lease job:
a lease refused by the worker, a lease that never streams, and a lease the platform cancels.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "ROUTES",
    "DropAfterAnswer",
    "DropConnection",
    "EndpointFaults",
    "HttpFault",
    "Latency",
    "MalformedBody",
    "RouteFault",
]

ROUTES: Final = frozenset(
    {
        "run",
        "runsync",
        "status",
        "status-sync",
        "stream",
        "cancel",
        "retry",
        "health",
        "purge-queue",
    }
)


@dataclass(frozen=True)
class HttpFault:
    """One scripted answer: ``status`` with a JSON error body (and ``Retry-After`` when set)."""

    status: int
    retry_after: float | None


@dataclass(frozen=True)
class Latency:
    """Serve the request normally, but only after ``seconds`` (loop time)."""

    seconds: float


@dataclass(frozen=True)
class DropConnection:
    """Close the connection without sending any answer."""


@dataclass(frozen=True)
class MalformedBody:
    """Answer 200 with a JSON body cut in half (unparseable)."""


@dataclass(frozen=True)
class DropAfterAnswer:
    """Serve the request (a ``/stream`` cursor moves on), then close before the answer is sent."""


RouteFault = HttpFault | Latency | DropConnection | MalformedBody | DropAfterAnswer
"""Any fault scripted for one request on a route."""


class EndpointFaults:
    """A fault script for one endpoint's API and workers, consumed request by request.

    >>> faults = EndpointFaults()
    >>> faults.http_status("run", 503, times=2)
    >>> [faults.take("run").status, faults.take("run").status, faults.take("run")]
    [503, 503, None]

    Attributes:
        capacity: host capacity set by :meth:`host_capacity` (``"config"`` = the endpoint's).
        on_capacity_change: called when the capacity changes (the endpoint re-plans workers).
        worker_deaths: seconds after taking its job at which the next workers die, in order.
        lease_refusals: error texts the next lease jobs are refused with, in order.
        silent_leases: how many of the next lease jobs never stream their lease.
        lease_cancellations: seconds after streaming their lease at which the platform cancels
            the next lease jobs, in order.
    """

    def __init__(self) -> None:
        self._pending: dict[str, deque[RouteFault]] = {}
        self.capacity: int | Literal["config"] | None = "config"
        self.worker_deaths: deque[float] = deque()
        self.lease_refusals: deque[str] = deque()
        self.silent_leases = 0
        self.lease_cancellations: deque[float] = deque()
        self.on_capacity_change: Callable[[], None] | None = None

    def _script(self, route: str, fault: RouteFault, times: int) -> None:
        if route not in ROUTES:
            raise ValueError(f"unknown route {route!r}; expected one of {sorted(ROUTES)}")
        if times < 1:
            raise ValueError("need times >= 1")
        self._pending.setdefault(route, deque()).extend([fault] * times)

    def http_status(
        self, route: str, status: int, *, times: int = 1, retry_after: float | None = None
    ) -> None:
        """Answer the next ``times`` requests on ``route`` with ``status`` instead of serving them.

        ``route`` is one of ``run``, ``runsync``, ``status``, ``status-sync``, ``stream``,
        ``cancel``, ``retry``, ``health``, ``purge-queue``. Scripts for a route queue up in the
        order given.
        """
        if not 100 <= status <= 599:
            raise ValueError("need an HTTP status in 100..599 and times >= 1")
        self._script(route, HttpFault(status, retry_after), times)

    def latency(self, route: str, seconds: float, *, times: int = 1) -> None:
        """Delay the next ``times`` requests on ``route`` by ``seconds``, then serve them."""
        if not seconds >= 0:
            raise ValueError("latency needs seconds >= 0")
        self._script(route, Latency(seconds), times)

    def drop_connection(self, route: str, *, times: int = 1) -> None:
        """Close the socket of the next ``times`` requests on ``route`` without an answer."""
        self._script(route, DropConnection(), times)

    def drop_after_answer(self, route: str, *, times: int = 1) -> None:
        """Serve the next ``times`` requests on ``route``, then drop them unanswered.

        What the request did stands (a job queued, a ``/stream`` chunk handed out and gone):
        the answer is lost on the way, as when a connection breaks mid-answer.
        """
        self._script(route, DropAfterAnswer(), times)

    def malformed_body(self, route: str, *, times: int = 1) -> None:
        """Answer the next ``times`` requests on ``route`` with 200 and truncated JSON."""
        self._script(route, MalformedBody(), times)

    def host_capacity(self, workers: int | Literal["config"] | None = 0) -> None:
        """Limit how many workers can boot or run (0 = none: wanted workers stay throttled).

        None lifts the limit; ``"config"`` restores the endpoint's ``capacity``. Jobs stay
        IN_QUEUE while no worker can start.
        """
        if isinstance(workers, int) and workers < 0:
            raise ValueError("host capacity must be >= 0 (or None)")
        self.capacity = workers
        if self.on_capacity_change is not None:
            self.on_capacity_change()

    def worker_dies(self, *, after_s: float = 0.0, times: int = 1) -> None:
        """The next ``times`` workers to take a job die ``after_s`` seconds later, mid-job.

        The dying worker's job ends FAILED, the worker stops and so does its SwarmUI.
        """
        if not after_s >= 0 or times < 1:
            raise ValueError("worker_dies needs after_s >= 0 and times >= 1")
        self.worker_deaths.extend([after_s] * times)

    def lease_refused(self, error: str = "worker refused the lease", *, times: int = 1) -> None:
        """The next ``times`` lease jobs are refused by their worker (v2 image).

        The worker streams ``{success: false, error}`` as the lease's first output and returns
        it, so the job ends FAILED with ``error``; no token is issued.
        """
        if times < 1 or not error:
            raise ValueError("lease_refused needs an error text and times >= 1")
        self.lease_refusals.extend([error] * times)

    def lease_never_streams(self, *, times: int = 1) -> None:
        """The next ``times`` lease jobs run but never stream their lease (v2 image).

        Such a job stays IN_PROGRESS on its (billed) worker and issues no token until it is
        cancelled, its worker dies, or it reaches its execution timeout.
        """
        if times < 1:
            raise ValueError("lease_never_streams needs times >= 1")
        self.silent_leases += times

    def lease_cancelled(self, *, after_s: float = 0.0, times: int = 1) -> None:
        """The platform cancels the next ``times`` leases ``after_s`` seconds after they streamed.

        As with ``/cancel`` of a running job, the job ends CANCELLED, its worker and that
        worker's SwarmUI stop, and the lease token is revoked.
        """
        if not after_s >= 0 or times < 1:
            raise ValueError("lease_cancelled needs after_s >= 0 and times >= 1")
        self.lease_cancellations.extend([after_s] * times)

    def take(self, route: str) -> RouteFault | None:
        """The fault scripted for the next request on ``route``, consuming it (None = serve)."""
        pending = self._pending.get(route)
        return pending.popleft() if pending else None

    def clear(self) -> None:
        """Forget every scripted fault and restore the configured capacity."""
        self._pending.clear()
        self.worker_deaths.clear()
        self.lease_refusals.clear()
        self.silent_leases = 0
        self.lease_cancellations.clear()
        self.host_capacity("config")

"""What a worker's life tells whoever observes it (tracing, cost): the seam, no telemetry here.

The pool makes one observer per worker from an :data:`ObserveWorker` factory and attaches it to
the worker's chart as a listener (every state entered and left), then tells it the facts the
chart does not hold. :mod:`observability` implements it with spans and the cost ledger; the
default observes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["NO_OBSERVER", "ObserveWorker", "WorkerFacts", "WorkerObserver", "WorkerStop"]


@dataclass(frozen=True)
class WorkerFacts:
    """Who a worker is, as known when it is asked for.

    Attributes:
        endpoint_id: the endpoint.
        protocol: ``"v1"`` (wake-up and keepalive) or ``"v2"`` (a lease).
        number: its number in its pool (1, 2, ...).
        requested_at: when it was asked for (loop time).
    """

    endpoint_id: str
    protocol: str
    number: int
    requested_at: float


@dataclass(frozen=True)
class WorkerStop:
    """How a worker's life ended.

    Attributes:
        at: when its job ended or was given up (loop time).
        job_existed: RunPod created its job (so a worker may have billed).
        ended_by_itself: the worker ended its job (idle or maximum age), no release was sent.
        expected_boot_s: the endpoint's expected cold start (for a worker never seen ready).
        generations: how many generations it served.
        lease_id: the job that held it, if any.
        worker_id: RunPod's worker id, if it was handed over.
        failure: why it was lost, if it was.
    """

    at: float
    job_existed: bool
    ended_by_itself: bool
    expected_boot_s: float
    generations: int
    lease_id: str | None
    worker_id: str | None
    failure: BaseException | None


class WorkerObserver(Protocol):
    """Hears one worker's life: its chart's states (as a chart listener) and these facts."""

    def on_enter_state(self, state: Any, event: Any) -> None:
        """The worker's chart entered ``state`` on ``event``."""
        return None

    def on_exit_state(self, state: Any) -> None:
        """The worker's chart left ``state``."""
        return None

    def handed_over(self, worker_id: str) -> None:
        """The worker is known: RunPod's worker ``worker_id`` holds the job."""
        return None

    def ready(self, at: float) -> None:
        """The worker's SwarmUI is ready to generate (the end of its boot)."""
        return None

    def job_answered(self, delay_ms: int | None, execution_ms: int | None) -> None:
        """RunPod reported the job's queue delay and execution time (its cancel answer)."""
        return None

    def served(self, usage: Any, execution_s: float) -> None:
        """A generation used the worker for ``execution_s`` s (``usage``: its cost record)."""
        return None

    def stopped(self, stop: WorkerStop) -> None:
        """The worker's life ended (its bill can close)."""
        return None

    def active(self) -> AbstractContextManager[None]:
        """A context in which the worker's own I/O runs (its RunPod calls are its own)."""


class _Unobserved(WorkerObserver):
    """Observes nothing (every fact falls through to the protocol's empty bodies)."""

    def active(self) -> AbstractContextManager[None]:
        """No context."""
        return nullcontext()


NO_OBSERVER: WorkerObserver = _Unobserved()
"""The observer that observes nothing."""

ObserveWorker = Callable[[WorkerFacts], WorkerObserver]
"""Makes the observer of a worker about to be asked for."""

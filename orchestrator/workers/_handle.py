"""A worker swarmpod holds, as the protocols hand it over."""

from __future__ import annotations

from dataclasses import dataclass

from ..secrets import Secret

__all__ = ["WakeReceipt", "WorkerHandle"]


@dataclass(frozen=True)
class WakeReceipt:
    """What a finished wake-up says about the worker it woke.

    Attributes:
        worker_id: RunPod's worker id (``RUNPOD_POD_ID``).
        public_url: base URL of the worker's SwarmUI.
        session_id: a SwarmUI session the worker handed out (v1), if any.
        delay_ms: the wake-up job's ``delayTime`` (time in queue, cold start included).
        execution_ms: the wake-up job's ``executionTime``.
    """

    worker_id: str
    public_url: str
    session_id: str | None
    delay_ms: int | None
    execution_ms: int | None


@dataclass
class WorkerHandle:
    """A worker held for generating, and the job that keeps it alive.

    Attributes:
        receipt: how the worker was woken.
        protocol: the worker protocol that holds it (``"v1"``).
        hold_job_id: the RunPod job keeping the worker alive (v1 keepalive, v2 lease).
        authorization: the ``Authorization`` value the worker's SwarmUI wants (v2), if any.
    """

    receipt: WakeReceipt
    protocol: str
    hold_job_id: str | None
    authorization: Secret | None = None

    @property
    def worker_id(self) -> str:
        """The held worker's RunPod id."""
        return self.receipt.worker_id

    @property
    def public_url(self) -> str:
        """Base URL of the held worker's SwarmUI."""
        return self.receipt.public_url

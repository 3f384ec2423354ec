"""Why a generation is waiting: the reasons swarmpod can tell a user, and how it finds them."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from ..runpod import Health, Job, JobStatus

__all__ = ["WaitReason", "Waiting", "WaitingCallback", "diagnose_queue", "reason_of_status"]


class WaitReason(enum.StrEnum):
    """What a waiting generation waits for (``ProgressEvent.detail["waiting"]``)."""

    MAX_CONCURRENT = "max_concurrent"
    """Queued behind MaxConcurrent: other generations of this backend hold every slot."""
    REQUESTING = "requesting"
    """Asking RunPod for a worker (the lease or wake-up job is being submitted)."""
    QUEUED = "queued"
    """The job waits IN_QUEUE until RunPod's scaler starts a worker for it."""
    THROTTLED = "throttled"
    """No GPU capacity: RunPod holds the endpoint's workers throttled (``/health``)."""
    UNHEALTHY = "unhealthy"
    """Workers crash during start (``unhealthy`` in ``/health``); check the worker's logs."""
    BOOTING = "booting"
    """A worker is assigned and starting (container and SwarmUI start: the cold start)."""
    MODEL_LOADING = "model_loading"
    """The worker's SwarmUI answers but is still loading its backend or model."""
    WORKERS_BUSY = "workers_busy"
    """Every worker swarmpod may hold (MaxWorkers) is busy; the first to free up is next."""


_MESSAGES = {
    WaitReason.MAX_CONCURRENT: "queued behind MaxConcurrent: waiting for a generation slot",
    WaitReason.REQUESTING: "asking RunPod for a worker",
    WaitReason.QUEUED: "waiting for RunPod to start a worker (job IN_QUEUE)",
    WaitReason.THROTTLED: "no GPU capacity on RunPod right now: the worker is throttled",
    WaitReason.UNHEALTHY: "workers are crash-looping (unhealthy in /health): check their logs",
    WaitReason.BOOTING: "a worker is booting (container and SwarmUI start)",
    WaitReason.MODEL_LOADING: "the worker's SwarmUI is loading its backend or model",
    WaitReason.WORKERS_BUSY: "every worker is busy (MaxWorkers); next in line for the first free",
}


@dataclass(frozen=True)
class Waiting:
    """One "why is it waiting" report.

    Attributes:
        reason: the reason.
        job: the RunPod job waited on (lease or wake-up), when there is one.
        message: one line for humans.
    """

    reason: WaitReason
    job: Job | None = None
    message: str = ""

    def __post_init__(self) -> None:
        if not self.message:
            object.__setattr__(self, "message", _MESSAGES[self.reason])


WaitingCallback = Callable[[Waiting], None]
"""Receives each :class:`Waiting` report of a generation that waits for a worker."""


def diagnose_queue(health: Health, *, unhealthy_before: int = 0) -> WaitReason:
    """Why a job stays IN_QUEUE, from the endpoint's ``/health``.

    >>> from orchestrator.runpod import Health
    >>> import msgspec
    >>> h = msgspec.convert({"jobs": {"inQueue": 1}, "workers": {"throttled": 1}}, Health)
    >>> diagnose_queue(h)
    <WaitReason.THROTTLED: 'throttled'>
    """
    workers = health.workers
    if workers.unhealthy > 0 and workers.unhealthy >= unhealthy_before:
        return WaitReason.UNHEALTHY
    if workers.throttled > 0:
        return WaitReason.THROTTLED
    if workers.initializing > 0:
        return WaitReason.BOOTING
    return WaitReason.QUEUED


def reason_of_status(job: Job) -> WaitReason:
    """The reason implied by a job's own status (no ``/health``)."""
    return WaitReason.QUEUED if job.state is JobStatus.IN_QUEUE else WaitReason.BOOTING

"""A worker swarmpod holds, as the protocols hand it over."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
import anyio

from ..secrets import Secret
from ..swarmui import SwarmUIClient
from ._observer import NO_OBSERVER, WorkerObserver

__all__ = ["Seat", "WakeReceipt", "WorkerHandle"]


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

    def swarm_client(
        self, http: aiohttp.ClientSession, *, session_id: str | None, request_timeout: float
    ) -> SwarmUIClient:
        """A client for this worker's SwarmUI (its URL, its bearer token, its id in errors)."""
        return SwarmUIClient(
            http,
            self.public_url,
            authorization=self.authorization,
            session_id=session_id,
            request_timeout=request_timeout,
            worker_id=self.worker_id,
        )


@dataclass
class Seat:
    """One generation's place on a held worker, from acquiring it until giving it back.

    Attributes:
        handle: the worker.
        cold: True when the generation waited for this worker to boot (a cold start), False
            when it took a worker that was already warm.
        job_ids: the RunPod jobs started to get the worker for this generation (wake-up,
            keepalive, lease), empty for a warm worker.
        delay_ms: RunPod's ``delayTime`` of the job that woke the worker, for a cold seat.
        boot_s: seconds from requesting the worker until it was ready, for a cold seat.
        session_id: a SwarmUI session already open on the worker, if any.
        checked: the worker's SwarmUI was checked ready (sessions, backends) already.
        token: the holder's private reference (the worker's slot in its pool).
        taken_at: loop time at which the seat was taken.
        observer: the worker's observer, told what the generation used (cost attribution).
        ended: set when the worker's life ended (released or lost) while the seat may be held.
    """

    handle: WorkerHandle
    cold: bool
    job_ids: tuple[str, ...] = ()
    delay_ms: int | None = None
    boot_s: float | None = None
    session_id: str | None = None
    checked: bool = False
    token: object = None
    taken_at: float = 0.0
    observer: WorkerObserver = NO_OBSERVER
    ended: anyio.Event | None = None

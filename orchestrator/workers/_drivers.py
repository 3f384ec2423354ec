"""The two ways of holding a worker, as one interface the worker's runner drives.

- :class:`LeaseDriver` (protocol v2): one ``lease`` job; its first streamed output hands the
  worker over; while it is held, its own gateway is asked whether it still answers (RunPod is
  asked only when it does not); ``/cancel`` releases it.
- :class:`WakeDriver` (protocol v1): a ``wakeup`` job polled until it completes, then a
  ``keepalive`` job at once that holds the worker, renewed before it ends; cancelling the
  keepalive (and a wake-up still pending) releases it.

The runner needs nothing else of a protocol, so both walk the same worker chart.
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Protocol

import anyio

from ..errors import OrchestratorError, RunPodNotFoundError, TransportError
from ..runpod import Job, JobStatus, RunPodClient
from ._handle import WorkerHandle
from ._v1 import V1Protocol, receipt_from
from ._v2 import LeaseTerms, V2Protocol

__all__ = [
    "Answers",
    "Kept",
    "LeaseDriver",
    "Polled",
    "Released",
    "WakeDriver",
    "Watched",
    "WorkerDriver",
    "driver_for",
]

log = logging.getLogger("swarmpod.workers")

PROBE_INTERVAL_S: Final = 5.0
"""Seconds between two probes of a held v2 worker: one light SwarmUI request through its
gateway (no RunPod call); RunPod is asked (one ``/status``) only when it went unanswered."""
# A worker whose lease RunPod still runs but whose SwarmUI left this many probes in a row
# unanswered is retired and released.
_SILENT_PROBES: Final = 3
# Submit the next keepalive this long before the current one ends: under RunPod's 4 s queue
# delay (no extra worker starts) and its 5 s idle timeout (the worker waits for it).
_RENEW_AHEAD_S: Final = 2.0
SHARED_SEATS: Final = 1_000_000
"""Seats of a v1 worker: every generation joins it; its SwarmUI queues what it cannot run."""


@dataclass(frozen=True)
class Polled:
    """What one wait for the hand-over learnt.

    Attributes:
        job: the job as last seen.
        running: RunPod runs the job (a worker was assigned and bills).
        handle: the worker, once handed over.
        answer_lost: an answer of the job's stream was lost on the way (it may have carried
            the lease, which RunPod never sends again).
    """

    job: Job
    running: bool = False
    handle: WorkerHandle | None = None
    answer_lost: bool = False


@dataclass(frozen=True)
class Released:
    """How a release (``/cancel``) went.

    Attributes:
        confirmed: RunPod took every cancel (nothing of the worker's jobs runs on).
        delay_ms: the holding job's ``delayTime`` from the cancel answer, when given.
        execution_ms: its ``executionTime``.
    """

    confirmed: bool
    delay_ms: int | None = None
    execution_ms: int | None = None


class Watched(enum.Enum):
    """How the watch of a held worker ended (a failure raises instead)."""

    ENDED = "ended"
    """The worker ended its job itself (the lease's idle or maximum time, the platform)."""
    SILENT = "silent"
    """The worker stopped answering while RunPod still runs its job: retire and release it."""


Answers = Callable[[], Awaitable[bool]]
"""Whether the held worker's SwarmUI answers one light request (through its gateway, bounded)."""


class Kept:
    """A withdrawal came too late: RunPod already runs the job (a worker bills for it)."""


class WorkerDriver(Protocol):
    """The protocol-specific I/O of holding one worker (see the module docstring)."""

    name: str
    """``"v1"`` or ``"v2"``."""
    seats: int | None
    """Seats of one worker, or None: as many as its SwarmUI's backends run at once."""
    retires: bool
    """Its hold is a lease that its worker ends itself, at a maximum age and when idle
    (``max_lease_seconds``, ``idle_seconds``): retire and release before either."""

    @property
    def client(self) -> RunPodClient:
        """The RunPod client (and key) of the endpoint."""

    async def request(self, terms: LeaseTerms) -> Job:
        """Send the job that will hold a worker (``/run``)."""

    async def poll(self, job: Job, *, wait_s: float) -> Polled:
        """Wait (up to about ``wait_s``) for news of the job: running, handed over, lost."""

    async def watch(
        self,
        handle: WorkerHandle,
        on_renewed: Callable[[str], Awaitable[None]],
        answers: Answers,
    ) -> Watched:
        """Return when the worker ended its job itself or stopped answering; raise when it
        failed.

        ``on_renewed`` hears of a new job holding the worker; ``answers`` asks the worker's
        SwarmUI whether it still answers."""

    async def withdraw(self, job_id: str) -> Released | Kept:
        """Take a queued job back (``/status``, then ``/cancel`` if it is still queued)."""

    async def release(self, job: Job | None, handle: WorkerHandle | None) -> Released:
        """Give the worker back: cancel what holds it. Never raises."""


@dataclass
class LeaseDriver:
    """Protocol v2: one lease job per worker (see the module docstring)."""

    protocol: V2Protocol
    name: str = "v2"
    seats: int | None = None
    retires: bool = True

    @property
    def client(self) -> RunPodClient:
        """The RunPod client of the endpoint."""
        return self.protocol.client

    async def request(self, terms: LeaseTerms) -> Job:
        """``/run`` a lease job asking ``terms``."""
        return await self.protocol.request_lease(terms=terms)

    async def poll(self, job: Job, *, wait_s: float) -> Polled:
        """One ``/stream`` long-poll; it answers at the lease, the job's end, or ``wait_s``."""
        wait_ms = max(1000, min(300_000, int(wait_s * 1000)))
        try:
            state, handle = await self.protocol.poll_lease(job.id, wait_ms=wait_ms)
        except TransportError as exc:
            log.warning("[RunPodServerless] streaming lease %s: %s", job.id, exc)
            return Polled(job, answer_lost=True)
        return Polled(job, running=state is not JobStatus.IN_QUEUE, handle=handle)

    async def watch(
        self,
        handle: WorkerHandle,
        on_renewed: Callable[[str], Awaitable[None]],
        answers: Answers,
    ) -> Watched:
        """Ask the worker itself, every :data:`PROBE_INTERVAL_S`, whether it still answers.

        A lease's job streams nothing after the hand-over, so RunPod would only be watched by
        a ``/stream`` long-poll (one RunPod call per lease, and one more every five minutes);
        the worker's gateway tells the same for free: it refuses once the lease ended (the
        token is revoked) and cannot be reached once the worker is gone. Only an unanswered
        probe costs a RunPod call, one ``/status``: the lease ended or RunPod no longer knows
        it (ENDED), or RunPod still runs it (a worker silent :data:`_SILENT_PROBES` probes in
        a row is SILENT).
        """
        job_id = handle.hold_job_id
        assert job_id is not None
        silent = 0
        while True:
            await anyio.sleep(PROBE_INTERVAL_S)
            if await answers():
                silent = 0
                continue
            try:
                job = await self.client.status(job_id)
            except RunPodNotFoundError:  # RunPod forgets only a job that ended long ago
                return Watched.ENDED
            except OrchestratorError as exc:
                log.warning(
                    "[RunPodServerless] lease %s: its worker did not answer, nor RunPod: %s",
                    job_id,
                    exc,
                )
                continue
            if job.state.is_terminal:
                return Watched.ENDED
            silent += 1
            if silent >= _SILENT_PROBES:
                return Watched.SILENT

    async def withdraw(self, job_id: str) -> Released | Kept:
        """Cancel the lease if RunPod still holds it queued."""
        job = await self.client.status(job_id)
        if job.state is not JobStatus.IN_QUEUE:
            return Kept()
        return _released(await self.protocol.release(job_id))

    async def release(self, job: Job | None, handle: WorkerHandle | None) -> Released:
        """Cancel the lease job."""
        job_id = job.id if job is not None else handle.hold_job_id if handle else None
        if job_id is None:
            return Released(confirmed=False)
        return _released(await self.protocol.release(job_id))


@dataclass
class WakeDriver:
    """Protocol v1: a wake-up job, then keepalives (see the module docstring)."""

    protocol: V1Protocol
    name: str = "v1"
    seats: int | None = SHARED_SEATS
    retires: bool = False

    @property
    def client(self) -> RunPodClient:
        """The RunPod client of the endpoint."""
        return self.protocol.client

    async def request(self, terms: LeaseTerms) -> Job:
        """Submit the wake-up job (``/run``, or ``/runsync`` with UseAsync = false)."""
        return await self.protocol.submit_wakeup()

    async def poll(self, job: Job, *, wait_s: float) -> Polled:
        """One ``/status`` of the wake-up (after the poll interval); once it completed, the
        keepalive is submitted at once and the worker handed over."""
        if not job.state.is_terminal:
            await anyio.sleep(self.protocol.poll_interval)
            job = await self.client.status(job.id)
        if not job.state.is_terminal:
            return Polled(job, running=job.state is not JobStatus.IN_QUEUE)
        receipt = receipt_from(job)
        return Polled(job, running=True, handle=await self.protocol.hold(receipt))

    async def watch(
        self,
        handle: WorkerHandle,
        on_renewed: Callable[[str], Awaitable[None]],
        answers: Answers,
    ) -> Watched:
        """Confirm the keepalive runs, then renew it just before it ends, for as long as the
        worker is held; raise if a keepalive ended under it."""
        await self.protocol.confirm_hold(handle)
        hold = math.ceil(self.protocol.hold_seconds)
        while True:
            await anyio.sleep(max(0.0, hold - _RENEW_AHEAD_S))
            renewed = await self.protocol.hold(handle.receipt)
            # The old keepalive completes on its own a moment later and the worker takes the
            # new one; cancelling the old one would stop the worker.
            assert renewed.hold_job_id is not None
            handle.hold_job_id = renewed.hold_job_id
            await on_renewed(renewed.hold_job_id)

    async def withdraw(self, job_id: str) -> Released | Kept:
        """Cancel the wake-up if it is still queued."""
        job = await self.client.status(job_id)
        if job.state is not JobStatus.IN_QUEUE:
            return Kept()
        cancelled = await self.protocol.release(wake_job=job, handle=None)
        return Released(confirmed=job_id in cancelled)

    async def release(self, job: Job | None, handle: WorkerHandle | None) -> Released:
        """Cancel the keepalive, and the wake-up if it is still pending."""
        cancelled = await self.protocol.release(wake_job=job, handle=handle)
        expected = [j for j in (handle.hold_job_id if handle else None,) if j]
        if handle is None and job is not None and not job.state.is_terminal:
            expected = [job.id]
        return Released(confirmed=bool(expected) and all(j in cancelled for j in expected))


def driver_for(protocol: V1Protocol | V2Protocol) -> WorkerDriver:
    """The driver of a protocol: leases for v2, a wake-up and keepalives for v1."""
    if isinstance(protocol, V2Protocol):
        return LeaseDriver(protocol)
    return WakeDriver(protocol)


def _released(answer: Job | None) -> Released:
    if answer is None:
        return Released(confirmed=False)
    return Released(True, answer.delay_time, answer.execution_time)

"""The shared state of one emulated endpoint, and the changes every part of it makes.

The board holds the endpoint's jobs, its queue and its workers. The parts that act on it (the
job queue, the scaler, the workers' lives, hosted processes, the hosted channel, the expiry
sweep) change it only through the transitions here or under them, and every change calls
:meth:`EndpointBoard.notify`: whoever waits for something to change (workers, the scaler, the
expiry sweep, long-polling requests) waits on it, so nothing polls.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import anyio
from anyio.abc import TaskGroup

from orchestrator.runpod import JobStatus

from ._config import EndpointConfig
from ._faults import EndpointFaults
from ._jobs import EmulatedJob
from ._webhooks import WebhookCall, deliver_webhook
from ._worker import EmulatedWorker, WorkerState

__all__ = ["EndpointBoard", "Pulse"]

_log = logging.getLogger("swarmpod.emulator")


class Pulse:
    """A broadcast "something changed": waiters wake on the next ``notify``."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def notify(self) -> None:
        """Wake every waiter."""
        self._event.set()
        self._event = anyio.Event()

    async def wait(self) -> None:
        """Wait for the next ``notify``."""
        await self._event.wait()


class EndpointBoard:
    """One endpoint's jobs, queue and workers, with the transitions several parts share.

    Attributes:
        endpoint_id: the endpoint id in the URL.
        config: the endpoint's :class:`EndpointConfig`.
        faults: the API fault script of the endpoint.
        jobs: every job submitted and not purged or expired, by id.
        queue: the jobs IN_QUEUE, in submission order.
        workers: every worker ever started, stopped ones included, in start order.
        stopped_at: when each healthy worker stopped (FlashBoot revives within a window).
        closing: the emulator is stopping: loops end, waiters are released.
        task_group: the emulator's task group, once the endpoint is open.
        base_url: where hosted workers reach the worker routes (``http://HOST:PORT/v2``).
        webhook_calls: every webhook delivery attempt, in order.
    """

    def __init__(self, endpoint_id: str, config: EndpointConfig) -> None:
        self.endpoint_id = endpoint_id
        self.config = config
        self.faults = EndpointFaults()
        self.jobs: dict[str, EmulatedJob] = {}
        self.queue: list[EmulatedJob] = []
        self.workers: list[EmulatedWorker] = []
        self.stopped_at: list[float] = []
        self.closing = False
        self.task_group: TaskGroup | None = None
        self.base_url: str | None = None
        self.webhook_calls: list[WebhookCall] = []
        self._changed = Pulse()
        self._background: set[anyio.CancelScope] = set()
        self.faults.on_capacity_change = self._changed.notify

    # -- change notification -------------------------------------------------------------

    def notify(self) -> None:
        """Something changed: wake every waiter."""
        self._changed.notify()

    async def changed(self) -> None:
        """Wait for the next change."""
        await self._changed.wait()

    async def wait_until(self, condition: Callable[[], bool], wait_s: float) -> None:
        """Wait until ``condition()`` holds, ``wait_s`` passed, or the emulator is stopping."""
        with anyio.move_on_after(wait_s):
            while not condition() and not self.closing:
                await self._changed.wait()

    # -- workers -------------------------------------------------------------------------

    def running_workers(self) -> list[EmulatedWorker]:
        """Workers not stopped (initializing, idle, running or unhealthy)."""
        return [w for w in self.workers if w.live]

    def worker_by_id(self, worker_id: str | None) -> EmulatedWorker | None:
        """The worker ``worker_id``, stopped or not (None if there is none)."""
        return next((w for w in self.workers if w.id == worker_id), None)

    def holds(self, worker: EmulatedWorker, job: EmulatedJob) -> bool:
        """Whether ``job`` is still ``worker``'s to run (IN_PROGRESS on it, not deleted)."""
        return (
            job.id in worker.job_ids
            and job.state is JobStatus.IN_PROGRESS
            and job.worker_id == worker.id
            and self.jobs.get(job.id) is job
        )

    def held_jobs(self, worker: EmulatedWorker) -> list[EmulatedJob]:
        """The jobs ``worker`` is running."""
        jobs = (self.jobs.get(job_id) for job_id in worker.job_ids)
        return [job for job in jobs if job is not None and self.holds(worker, job)]

    def fail_held(self, worker: EmulatedWorker, error: str) -> None:
        """FAIL every job ``worker`` is running, with ``error``."""
        for job in self.held_jobs(worker):
            job.error = error
            self.finish(job, JobStatus.FAILED)
        worker.job_ids.clear()

    def stop_worker(self, worker: EmulatedWorker, reason: str) -> None:
        """Stop a live worker: its jobs FAIL, its task (and so its handler) is cancelled."""
        if not worker.live:
            return
        _log.info("[Emulator] %s: stopping worker %s: %s", self.endpoint_id, worker.id, reason)
        was_healthy = worker.state is not WorkerState.UNHEALTHY
        if not self.closing:
            self.fail_held(worker, f"worker {worker.id} stopped: {reason}")
        worker.state = WorkerState.STOPPED
        worker.stopped_at = anyio.current_time()
        worker.current_job_id = None
        worker.scope.cancel()
        if was_healthy:
            self.stopped_at.append(worker.stopped_at)
        self.notify()

    def crashed(self, worker: EmulatedWorker, why: str) -> bool:
        """Mark ``worker`` unhealthy because ``why``; return False (it did not come up)."""
        _log.warning("[Emulator] %s: worker %s unhealthy: %s", self.endpoint_id, worker.id, why)
        worker.state = WorkerState.UNHEALTHY
        self.notify()
        return False

    # -- jobs ----------------------------------------------------------------------------

    def finish(self, job: EmulatedJob, status: JobStatus) -> None:
        """End ``job`` in ``status`` (now), and deliver its webhook if it has one."""
        job.status = status.value
        job.finished_at = anyio.current_time()
        job.progress = None
        _log.debug("[Emulator] %s: job %s %s", self.endpoint_id, job.id, status)
        if job.webhook and self.task_group is not None and not self.closing:
            body = job.to_api(job.finished_at)
            self.task_group.start_soon(self._webhook, job.id, job.webhook, body)
        self.notify()

    async def _webhook(self, job_id: str, url: str, body: dict[str, Any]) -> None:
        with anyio.CancelScope() as scope:
            self._background.add(scope)
            try:
                await deliver_webhook(
                    job_id,
                    url,
                    body,
                    retries=self.config.webhook_retries,
                    retry_delay_s=self.config.webhook_retry_delay_s,
                    record=self.webhook_calls.append,
                )
            finally:
                self._background.discard(scope)

    # -- open and close ------------------------------------------------------------------

    def open(self, task_group: TaskGroup, base_url: str | None) -> None:
        """Attach the emulator's task group (and the worker routes' base URL)."""
        self.task_group = task_group
        self.base_url = base_url

    def close(self) -> None:
        """Stop every worker and background task and release every waiter."""
        self.closing = True
        for worker in self.running_workers():
            self.stop_worker(worker, "the emulator is stopping")
        for scope in self._background:
            scope.cancel()
        self.notify()

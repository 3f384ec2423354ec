"""One emulated serverless endpoint: job queue, workers, queue-delay scaler, /health counters.

Every state change calls ``_changed.notify()``; workers, the scaler and ``/runsync`` waiters wait
on it, so nothing polls. Workers pull jobs FIFO (normal priority before ``lowPriority``), run one
at a time, and live in the emulator's task group under their own cancel scope: stopping a
worker cancels that scope, which interrupts whatever its handler was doing.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

import anyio
from anyio.abc import TaskGroup

from orchestrator.emulator.swarm import FakeSwarmUI, SwarmFaults
from orchestrator.runpod import JobStatus

from ._config import EndpointConfig
from ._faults import EndpointFaults
from ._jobs import EmulatedJob, Outcome, new_job_id, outcome_of_exception, outcome_of_value
from ._v1_handler import handle_v1
from ._worker import EmulatedWorker, WorkerState, new_worker_id

__all__ = ["EmulatedEndpoint"]

_log = logging.getLogger("swarmpod.emulator")

FLASHBOOT_WINDOW_S: Final = 600.0
"""A worker stopped at most this long ago can be revived with ``flashboot_start_s``."""


class _Pulse:
    """A broadcast "something changed": waiters wake on the next ``notify``."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = anyio.Event()

    async def wait(self) -> None:
        await self._event.wait()


class EmulatedEndpoint:
    """A RunPod serverless endpoint: its jobs, its workers, its faults and its counters.

    Attributes:
        endpoint_id: the endpoint id in the URL.
        config: its :class:`EndpointConfig`.
        jobs: every job submitted and not purged, by id.
        workers: every worker ever started, stopped ones included, in start order.
        faults: the API fault script of this endpoint.
        swarm_faults: the fault script shared by the fake SwarmUI of every worker.
        api_calls: ``(method, route, status)`` of every request served for this endpoint.
    """

    def __init__(self, endpoint_id: str, config: EndpointConfig) -> None:
        self.endpoint_id = endpoint_id
        self.config = config
        self._jobs: dict[str, EmulatedJob] = {}
        self._queue: list[EmulatedJob] = []
        self._workers: list[EmulatedWorker] = []
        self.faults = EndpointFaults()
        self.swarm_faults = SwarmFaults()
        self.api_calls: list[tuple[str, str, int]] = []
        self._changed = _Pulse()
        self._task_group: TaskGroup | None = None
        self._closing = False
        self._stopped_at: list[float] = []

    @property
    def jobs(self) -> Mapping[str, EmulatedJob]:
        """Every job submitted and not purged, by id."""
        return self._jobs

    @property
    def workers(self) -> Sequence[EmulatedWorker]:
        """Every worker ever started, stopped ones included, in start order."""
        return self._workers

    def running_workers(self) -> list[EmulatedWorker]:
        """Workers not stopped (initializing, idle, running or unhealthy)."""
        return [w for w in self._workers if w.live]

    def health(self) -> dict[str, Any]:
        """The ``/health`` object (spec §2.9), computed from the current state.

        ``completed``/``failed`` count every job kept (TIMED_OUT counts as failed); ``ready``
        and ``throttled`` are always 0 because the emulator has no such worker states yet.
        """
        jobs = {"completed": 0, "failed": 0, "inProgress": 0, "inQueue": 0, "retried": 0}
        by_status = {
            JobStatus.COMPLETED: "completed",
            JobStatus.FAILED: "failed",
            JobStatus.TIMED_OUT: "failed",
            JobStatus.IN_PROGRESS: "inProgress",
            JobStatus.IN_QUEUE: "inQueue",
        }
        for job in self._jobs.values():
            key = by_status.get(job.state)
            if key is not None:
                jobs[key] += 1
        workers = dict.fromkeys(
            ("idle", "initializing", "ready", "running", "throttled", "unhealthy"), 0
        )
        for worker in self._workers:
            if worker.live:
                workers[worker.state.value] += 1
        return {"jobs": jobs, "workers": workers}

    def emit_stream(self, job_id: str, output: Any) -> None:
        """Append one streamed output to a job, as a generator handler's ``yield`` does."""
        self._jobs[job_id].stream.append(output)
        self._changed.notify()

    # -- the API side --------------------------------------------------------------------

    def submit(
        self, job_input: Any, policy: dict[str, Any], webhook: str | None, *, sync: bool
    ) -> EmulatedJob:
        """Queue a new job (``/run``, ``/runsync``)."""
        job = EmulatedJob(
            id=new_job_id(sync=sync),
            input=job_input,
            policy=policy,
            webhook=webhook,
            submitted_at=anyio.current_time(),
        )
        self._jobs[job.id] = job
        self._queue.append(job)
        _log.debug("[Emulator] %s: job %s queued", self.endpoint_id, job.id)
        self._changed.notify()
        return job

    async def wait_terminal(self, job: EmulatedJob, wait_s: float) -> None:
        """Wait until ``job`` is terminal, ``wait_s`` passed, or the emulator is stopping."""
        with anyio.move_on_after(wait_s):
            while not job.state.is_terminal and not self._closing:
                await self._changed.wait()

    def cancel(self, job: EmulatedJob) -> None:
        """Cancel a job: a queued one is never taken; a running one's worker is stopped."""
        if job.state is JobStatus.IN_QUEUE:
            self._queue.remove(job)
        elif job.state is JobStatus.IN_PROGRESS:
            worker = self._worker_by_id(job.worker_id)
            if worker is not None:
                self._stop_worker(worker, f"its job {job.id} was cancelled")
        else:
            return
        self._finish(job, JobStatus.CANCELLED)

    def purge_queue(self) -> int:
        """Remove every queued job (they are forgotten, as on RunPod); return how many."""
        removed = len(self._queue)
        for job in self._queue:
            del self._jobs[job.id]
        self._queue.clear()
        self._changed.notify()
        return removed

    # -- lifecycle -----------------------------------------------------------------------

    def open(self, task_group: TaskGroup) -> None:
        """Start the scaler (and so the min workers) in the emulator's task group."""
        self._task_group = task_group
        task_group.start_soon(self._scale_loop, name=f"scaler {self.endpoint_id}")

    def close(self) -> None:
        """Stop every worker and release ``/runsync`` waiters (the emulator is stopping)."""
        self._closing = True
        for worker in self.running_workers():
            self._stop_worker(worker, "the emulator is stopping")
        self._changed.notify()

    # -- scaling -------------------------------------------------------------------------

    async def _scale_loop(self) -> None:
        while not self._closing:
            now = anyio.current_time()
            while len(self.running_workers()) < self.config.min_workers:
                self._start_worker("min workers")
            next_check = self._scale_for_queue(now)
            with anyio.move_on_after(next_check - now):
                await self._changed.wait()

    def _scale_for_queue(self, now: float) -> float:
        """Start workers for jobs past the queue delay; return when to look again."""
        delay = self.config.queue_delay_s
        eligible = [job for job in self._queue if not job.low_priority]
        overdue = [job for job in eligible if now - job.submitted_at >= delay]
        coming = sum(w.state in (WorkerState.IDLE, WorkerState.INITIALIZING) for w in self._workers)
        room = self.config.max_workers - len(self.running_workers())
        for _ in range(min(len(overdue) - coming, room)):
            self._start_worker("queue delay")
        waiting = [job.submitted_at + delay for job in eligible if now - job.submitted_at < delay]
        return min(waiting, default=math.inf)

    def _start_worker(self, reason: str) -> None:
        assert self._task_group is not None, "the endpoint is not open"
        now = anyio.current_time()
        recent = [t for t in self._stopped_at if now - t <= FLASHBOOT_WINDOW_S]
        flashboot = self.config.flashboot_start_s is not None and bool(recent)
        if flashboot:
            self._stopped_at.remove(recent[0])
        worker_id = new_worker_id()
        swarm = FakeSwarmUI(self.config.swarm, faults=self.swarm_faults, worker_id=worker_id)
        worker = EmulatedWorker(worker_id, swarm, started_at=now, flashboot=flashboot)
        self._workers.append(worker)
        _log.info("[Emulator] %s: starting worker %s (%s)", self.endpoint_id, worker_id, reason)
        self._task_group.start_soon(self._worker_main, worker, name=f"worker {worker_id}")
        self._changed.notify()

    def _stop_worker(self, worker: EmulatedWorker, reason: str) -> None:
        if not worker.live:
            return
        _log.info("[Emulator] %s: stopping worker %s: %s", self.endpoint_id, worker.id, reason)
        was_healthy = worker.state is not WorkerState.UNHEALTHY
        worker.state = WorkerState.STOPPED
        worker.stopped_at = anyio.current_time()
        worker.current_job_id = None
        worker.scope.cancel()
        if was_healthy:
            self._stopped_at.append(worker.stopped_at)
        self._changed.notify()

    def _worker_by_id(self, worker_id: str | None) -> EmulatedWorker | None:
        return next((w for w in self._workers if w.id == worker_id), None)

    # -- one worker's life ---------------------------------------------------------------

    async def _worker_main(self, worker: EmulatedWorker) -> None:
        try:
            with worker.scope:
                if await self._boot(worker):
                    await self._serve(worker)
        finally:
            with anyio.CancelScope(shield=True):
                await worker.swarm.stop()

    async def _boot(self, worker: EmulatedWorker) -> bool:
        config = self.config
        boot_s = config.cold_start_s
        if worker.flashboot and config.flashboot_start_s is not None:
            boot_s = config.flashboot_start_s
        if math.isinf(boot_s):
            await anyio.sleep_forever()
        await anyio.sleep(boot_s)
        if config.boot_fails:
            return self._crashed(worker, "the container crashed during start")
        try:
            worker.public_url = await worker.swarm.start(host="127.0.0.1", port=0)
        except OSError as exc:
            return self._crashed(worker, f"its SwarmUI could not listen ({exc})")
        worker.session_id = worker.swarm.create_session()
        worker.state = WorkerState.IDLE
        _log.info("[Emulator] %s: worker %s ready", self.endpoint_id, worker.id)
        self._changed.notify()
        return True

    def _crashed(self, worker: EmulatedWorker, why: str) -> bool:
        _log.warning("[Emulator] %s: worker %s unhealthy: %s", self.endpoint_id, worker.id, why)
        worker.state = WorkerState.UNHEALTHY
        self._changed.notify()
        return False

    async def _serve(self, worker: EmulatedWorker) -> None:
        while True:
            job: EmulatedJob | None = None
            with anyio.move_on_after(self.config.idle_timeout_s):
                job = await self._take_job(worker)
            if job is None:
                if len(self.running_workers()) > self.config.min_workers:
                    self._stop_worker(worker, "idle timeout")
                    return
                continue
            if not await self._execute(worker, job):
                return

    async def _take_job(self, worker: EmulatedWorker) -> EmulatedJob:
        while True:
            if self._queue:
                job = min(self._queue, key=lambda j: j.low_priority)
                self._queue.remove(job)
                job.status = JobStatus.IN_PROGRESS.value
                job.started_at = anyio.current_time()
                job.worker_id = worker.id
                worker.current_job_id = job.id
                worker.state = WorkerState.RUNNING
                self._changed.notify()
                return job
            await self._changed.wait()

    async def _execute(self, worker: EmulatedWorker, job: EmulatedJob) -> bool:
        """Run ``job``; return whether the worker goes on serving."""
        timeout_s = job.execution_timeout_s(self.config.execution_timeout_s)
        outcome: Outcome | None = None
        with anyio.move_on_after(timeout_s):
            try:
                outcome = outcome_of_value(await handle_v1(worker, job.input))
            except Exception as exc:
                outcome = outcome_of_exception(exc, worker_id=worker.id)
        if outcome is None:
            if job.state is JobStatus.IN_PROGRESS:
                self._finish(job, JobStatus.TIMED_OUT)
            self._stop_worker(worker, f"job {job.id} exceeded its execution timeout")
            return False
        if job.state is JobStatus.IN_PROGRESS and job.worker_id == worker.id:
            job.output, job.error = outcome.output, outcome.error
            self._finish(job, outcome.status)
        worker.current_job_id = None
        worker.state = WorkerState.IDLE
        self._changed.notify()
        return True

    def _finish(self, job: EmulatedJob, status: JobStatus) -> None:
        job.status = status.value
        job.finished_at = anyio.current_time()
        _log.debug("[Emulator] %s: job %s %s", self.endpoint_id, job.id, status)
        self._changed.notify()

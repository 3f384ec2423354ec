"""One emulated serverless endpoint: job queue, workers, scalers, /health counters, billing.

Every state change calls ``_changed.notify()``; workers, the scaler, the expiry sweep and
long-polling requests wait on it, so nothing polls. Workers pull jobs FIFO (normal priority
before ``lowPriority``), run one at a time, and live in the emulator's task group under their own
cancel scope: stopping a worker cancels that scope, which interrupts whatever its handler was
doing.

A hosted endpoint (``EndpointConfig.handler_command``) runs the user's own handler instead: each
worker's boot starts a process of it (:mod:`._hosted`), which then speaks RunPod's worker
protocol to the worker routes (:mod:`._worker_api`): the ``*_from_worker`` methods and
:meth:`EmulatedEndpoint.take_jobs` below. The worker is INITIALIZING (billed boot) until its
first job-take, IDLE or RUNNING after; its task only supervises the process: idle and execution
timeouts, missed pings, a process that exits by itself (crashed: unhealthy, restarted after
``unhealthy_restart_s``) and ``stopPod`` (recycled: a fresh process, billed boot again).
"""

from __future__ import annotations

import enum
import hmac
import json
import logging
import math
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import anyio
from anyio.abc import TaskGroup

from orchestrator.emulator.swarm import FakeSwarmUI, SwarmFaults
from orchestrator.runpod import JobStatus

from ._config import Duration, EndpointConfig
from ._faults import EndpointFaults
from ._handlers import HandlerContext, builtin_handler
from ._hosted import WorkerProcess, worker_env
from ._jobs import EmulatedJob, Outcome, new_job_id, outcome_of_exception, outcome_of_value
from ._ledger import LedgerEntry, ledger_entry, ledger_json
from ._ratelimit import RateLimiter
from ._webhooks import WebhookCall, deliver_webhook
from ._worker import EmulatedWorker, WorkerState, new_worker_id, new_worker_key, proxy_url

__all__ = ["Delivery", "EmulatedEndpoint"]


_log = logging.getLogger("swarmpod.emulator")

FLASHBOOT_WINDOW_S: Final = 600.0
"""A worker stopped at most this long ago can be revived with ``flashboot_start_s``."""

DEFAULT_TTL_S: Final = 86_400.0
"""A job's time to live when its ``policy.ttl`` is unset (24 h, runpod-api.md §2.1)."""

_HOSTED: Final = (WorkerState.INITIALIZING, WorkerState.IDLE, WorkerState.RUNNING)


class Delivery(enum.Enum):
    """What became of a hosted worker's result, progress or stream chunk."""

    ACCEPTED = "accepted"
    """Recorded on the job."""
    DISCARDED = "discarded"
    """The job is no longer this worker's (cancelled, timed out, finished): dropped, as RunPod
    drops a late result (runpod-api.md §8 item 12)."""
    UNKNOWN = "unknown"
    """No such job (never existed, purged, or deleted by its ttl or retention)."""


class _HostEnd(enum.Enum):
    """How a hosted worker's process run ended."""

    STOPPED = "stopped"  # the worker was stopped (idle, timeout, cancel, kill, close)
    RECYCLE = "recycle"  # stopPod: start a fresh process
    CRASHED = "crashed"  # unhealthy: restart after unhealthy_restart_s
    GAVE_UP = "gave up"  # unhealthy for good (never started, init timeout)


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
        webhook_calls: every webhook delivery attempt, in order.
        rate_limiter: the per-route token buckets (None when rate limits are off).
    """

    def __init__(self, endpoint_id: str, config: EndpointConfig) -> None:
        self.endpoint_id = endpoint_id
        self.config = config
        self._jobs: dict[str, EmulatedJob] = {}
        self._queue: list[EmulatedJob] = []
        self._workers: list[EmulatedWorker] = []
        self.faults = EndpointFaults()
        self.swarm_faults = SwarmFaults()
        self._worker_swarm_faults: dict[int, SwarmFaults] = {}
        self.api_calls: list[tuple[str, str, int]] = []
        self._changed = _Pulse()
        self.faults.on_capacity_change = self._changed.notify
        self._task_group: TaskGroup | None = None
        self._closing = False
        self._stopped_at: list[float] = []
        self._retried = 0
        self._rng = random.Random(config.seed)
        self._background: set[anyio.CancelScope] = set()
        self.webhook_calls: list[WebhookCall] = []
        self.rate_limiter = None if config.rate_limits is None else RateLimiter(config.rate_limits)
        self._base_url: str | None = None

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

        ``completed``/``failed`` count every job kept (TIMED_OUT counts as failed); ``retried``
        counts ``/retry`` calls; ``ready`` is always 0 (the emulator has no such worker state).
        """
        jobs = {"completed": 0, "failed": 0, "inProgress": 0, "inQueue": 0}
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
        jobs["retried"] = self._retried
        workers = dict.fromkeys(
            ("idle", "initializing", "ready", "running", "throttled", "unhealthy"), 0
        )
        for worker in self._workers:
            if worker.live:
                workers[worker.state.value] += 1
        return {"jobs": jobs, "workers": workers}

    @property
    def ledger(self) -> list[LedgerEntry]:
        """The billing ledger: one entry per worker ever started, in start order.

        A live worker's entry is open (``stopped_at`` None) and counts up to now.
        """
        now = anyio.current_time()
        return [ledger_entry(worker, now) for worker in self._workers]

    def ledger_json(self) -> dict[str, Any]:
        """The ledger as a JSON-serializable dict with totals (``total_billed_seconds``, ...)."""
        return ledger_json(self.endpoint_id, self.ledger)

    def worker_swarm_faults(self, ordinal: int) -> SwarmFaults:
        """The fault script of one worker's fake SwarmUI: the ``ordinal``-th started (1 = first).

        That worker's SwarmUI follows this script instead of the shared :attr:`swarm_faults`;
        script it before the worker starts (a worker that already runs keeps its script).
        """
        if ordinal < 1:
            raise ValueError("worker ordinals start at 1")
        return self._worker_swarm_faults.setdefault(ordinal, SwarmFaults())

    def emit_stream(self, job_id: str, output: Any) -> None:
        """Append one streamed output to a job, as a generator handler's ``yield`` does."""
        self._jobs[job_id].stream.append(output)
        self._changed.notify()

    def report_progress(self, job_id: str, output: Any) -> None:
        """A worker's ``progress_update``: an IN_PROGRESS job shows ``output`` in ``/status``.

        Ignored unless the job is IN_PROGRESS (a late update never revives a finished job).
        """
        job = self._jobs.get(job_id)
        if job is not None and job.state is JobStatus.IN_PROGRESS:
            job.progress = output
            self._changed.notify()

    def kill_worker(self, worker_id: str, reason: str = "the worker died") -> None:
        """Kill a live worker at once: its running job FAILS, it and its SwarmUI stop."""
        worker = self._worker_by_id(worker_id)
        if worker is None:
            raise KeyError(worker_id)
        self._fail_held(worker, f"worker {worker.id} died: {reason}")
        self._stop_worker(worker, reason)

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
            sync=sync,
        )
        self._jobs[job.id] = job
        self._queue.append(job)
        _log.debug("[Emulator] %s: job %s queued", self.endpoint_id, job.id)
        self._changed.notify()
        return job

    async def wait_terminal(self, job: EmulatedJob, wait_s: float) -> None:
        """Wait until ``job`` is terminal, ``wait_s`` passed, or the emulator is stopping."""
        await self.wait_until(lambda: job.state.is_terminal, wait_s)

    async def wait_until(self, condition: Callable[[], bool], wait_s: float) -> None:
        """Wait until ``condition()`` holds, ``wait_s`` passed, or the emulator is stopping."""
        with anyio.move_on_after(wait_s):
            while not condition() and not self._closing:
                await self._changed.wait()

    def retry(self, job: EmulatedJob) -> bool:
        """Requeue a FAILED or TIMED_OUT job under its id (False for any other state)."""
        if job.state not in (JobStatus.FAILED, JobStatus.TIMED_OUT):
            return False
        job.status = JobStatus.IN_QUEUE.value
        job.started_at = job.finished_at = job.worker_id = None
        job.output = job.error = job.progress = None
        job.stream.clear()
        job.stream_cursor = 0
        job.retries += 1
        self._retried += 1
        self._queue.append(job)
        self._changed.notify()
        return True

    def cancel(self, job: EmulatedJob) -> None:
        """Cancel a job: a queued one is never taken; a running one's worker is stopped.

        A hosted worker also finds the job on its stop channel (``jobsToStop``).
        """
        if job.state is JobStatus.IN_QUEUE:
            self._queue.remove(job)
            self._finish(job, JobStatus.CANCELLED)
        elif job.state is JobStatus.IN_PROGRESS:
            self._finish(job, JobStatus.CANCELLED)
            worker = self._worker_by_id(job.worker_id)
            if worker is not None and worker.live:
                worker.stop_job_ids.append(job.id)
                self._stop_worker(worker, f"its job {job.id} was cancelled")

    def purge_queue(self) -> int:
        """Remove every queued job (they are forgotten, as on RunPod); return how many."""
        removed = len(self._queue)
        for job in self._queue:
            del self._jobs[job.id]
        self._queue.clear()
        self._changed.notify()
        return removed

    # -- lifecycle -----------------------------------------------------------------------

    def open(self, task_group: TaskGroup, *, base_url: str | None = None) -> None:
        """Start the scaler (and so the min workers) in the emulator's task group.

        ``base_url`` (``http://HOST:PORT/v2``) is where hosted workers reach the worker routes.
        """
        self._task_group = task_group
        self._base_url = base_url
        task_group.start_soon(self._scale_loop, name=f"scaler {self.endpoint_id}")
        task_group.start_soon(self._expiry_loop, name=f"expiry {self.endpoint_id}")

    def close(self) -> None:
        """Stop every worker and release ``/runsync`` waiters (the emulator is stopping)."""
        self._closing = True
        for worker in self.running_workers():
            self._stop_worker(worker, "the emulator is stopping")
        for scope in self._background:
            scope.cancel()
        self._changed.notify()

    # -- expiry: ttl and result retention ------------------------------------------------

    def _expires_at(self, job: EmulatedJob) -> float:
        ttl = job.ttl_s()
        at = job.submitted_at + (DEFAULT_TTL_S if ttl is None else ttl)
        if job.finished_at is not None:
            config = self.config
            retention = config.runsync_retention_s if job.sync else config.run_retention_s
            at = min(at, job.finished_at + retention)
        return at

    async def _expiry_loop(self) -> None:
        while not self._closing:
            now = anyio.current_time()
            next_at = math.inf
            for job in list(self._jobs.values()):
                at = self._expires_at(job)
                if at <= now:
                    self._expire(job)
                else:
                    next_at = min(next_at, at)
            with anyio.move_on_after(next_at - now):
                await self._changed.wait()

    def _expire(self, job: EmulatedJob) -> None:
        """Delete a job past its ttl or retention, in any state (a running one's result is lost)."""
        _log.debug("[Emulator] %s: job %s expired (%s)", self.endpoint_id, job.id, job.status)
        if job in self._queue:
            self._queue.remove(job)
        del self._jobs[job.id]
        self._changed.notify()

    # -- scaling -------------------------------------------------------------------------

    async def _scale_loop(self) -> None:
        while not self._closing:
            now = anyio.current_time()
            while len(self.running_workers()) < self.config.min_workers:
                self._start_worker("min workers")
            if self.config.scaler == "request_count":
                next_check = self._scale_for_requests()
            else:
                next_check = self._scale_for_queue(now)
            with anyio.move_on_after(next_check - now):
                await self._changed.wait()

    def _scale_for_queue(self, now: float) -> float:
        """Start workers for jobs past the queue delay; return when to look again."""
        delay = self.config.queue_delay_s
        eligible = [job for job in self._queue if not job.low_priority]
        # one expression for "due" on both sides: ``now - t >= d`` and ``t + d <= now`` can
        # disagree by a rounding error, and a due time == now never lets loop time advance
        overdue = [job for job in eligible if job.submitted_at + delay <= now]
        starting = (WorkerState.IDLE, WorkerState.INITIALIZING, WorkerState.THROTTLED)
        coming = sum(w.state in starting for w in self._workers)
        room = self.config.max_workers - len(self.running_workers())
        for _ in range(min(len(overdue) - coming, room)):
            self._start_worker("queue delay")
        waiting = [job.submitted_at + delay for job in eligible if job.submitted_at + delay > now]
        return min(waiting, default=math.inf)

    def _scale_for_requests(self) -> float:
        """Request-count scaler: ceil((inQueue + inProgress) / scaler_value) workers.

        ``lowPriority`` jobs still queued do not count, so they never start a worker.
        """
        queued = sum(not job.low_priority for job in self._queue)
        running = sum(job.state is JobStatus.IN_PROGRESS for job in self._jobs.values())
        target = math.ceil((queued + running) / self.config.scaler_value)
        live = len(self.running_workers())
        for _ in range(min(target, self.config.max_workers) - live):
            self._start_worker("request count")
        return math.inf

    def _capacity(self) -> int | None:
        capacity = self.faults.capacity
        return self.config.capacity if capacity == "config" else capacity

    def _has_host(self, worker: EmulatedWorker | None) -> bool:
        capacity = self._capacity()
        if capacity is None:
            return True
        hosted = sum(w.state in _HOSTED for w in self._workers if w is not worker)
        return hosted < capacity

    def _start_worker(self, reason: str) -> None:
        assert self._task_group is not None, "the endpoint is not open"
        now = anyio.current_time()
        recent = [t for t in self._stopped_at if now - t <= FLASHBOOT_WINDOW_S]
        flashboot = self.config.flashboot_start_s is not None and bool(recent)
        if flashboot:
            self._stopped_at.remove(recent[0])
        worker_id = new_worker_id()
        faults = self._worker_swarm_faults.get(len(self._workers) + 1, self.swarm_faults)
        swarm = FakeSwarmUI(self.config.swarm, faults=faults, worker_id=worker_id)
        state = WorkerState.INITIALIZING
        if not self._has_host(None):
            state = WorkerState.THROTTLED
        worker = EmulatedWorker(worker_id, swarm, started_at=now, flashboot=flashboot, state=state)
        self._workers.append(worker)
        _log.info("[Emulator] %s: starting worker %s (%s)", self.endpoint_id, worker_id, reason)
        self._task_group.start_soon(self._worker_main, worker, name=f"worker {worker_id}")
        self._changed.notify()

    def _stop_worker(self, worker: EmulatedWorker, reason: str) -> None:
        if not worker.live:
            return
        _log.info("[Emulator] %s: stopping worker %s: %s", self.endpoint_id, worker.id, reason)
        was_healthy = worker.state is not WorkerState.UNHEALTHY
        if not self._closing:
            self._fail_held(worker, f"worker {worker.id} stopped: {reason}")
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
        hosted = self.config.handler_command is not None
        try:
            with worker.scope:
                while True:
                    await self._wait_for_host(worker)
                    booted = await self._boot(worker)
                    if booted and not hosted:
                        await self._serve(worker)
                        return
                    if booted:
                        ended = await self._host(worker)
                        if not worker.live or ended in (_HostEnd.STOPPED, _HostEnd.GAVE_UP):
                            return
                        if ended is _HostEnd.CRASHED:
                            await anyio.sleep(self.config.unhealthy_restart_s)
                    elif worker.boot_crashes == 0 or worker.boot_crashes > self.config.crash_loop:
                        return  # unhealthy for good: it keeps its slot, unbilled
                    else:
                        await anyio.sleep(self.config.unhealthy_restart_s)
                    worker.state = WorkerState.INITIALIZING
                    self._changed.notify()
        finally:
            with anyio.CancelScope(shield=True):
                await worker.swarm.stop()

    async def _wait_for_host(self, worker: EmulatedWorker) -> None:
        """Stay THROTTLED (unbilled) until host capacity lets the worker boot."""
        while not self._has_host(worker):
            if worker.state is not WorkerState.THROTTLED:
                worker.state = WorkerState.THROTTLED
                self._changed.notify()
            await self._changed.wait()
        if worker.state is WorkerState.THROTTLED:
            worker.state = WorkerState.INITIALIZING
            self._changed.notify()

    def _draw(self, duration: Duration) -> float:
        if isinstance(duration, tuple):
            return self._rng.uniform(*duration)
        return duration

    async def _boot(self, worker: EmulatedWorker) -> bool:
        config = self.config
        boot = config.cold_start_s
        if worker.flashboot and config.flashboot_start_s is not None:
            boot = config.flashboot_start_s
        boot_s = self._draw(boot)
        if boot_s > config.init_timeout_s:
            await anyio.sleep(config.init_timeout_s)
            return self._crashed(worker, f"its start took over {config.init_timeout_s:g} s")
        await anyio.sleep(boot_s)
        if config.boot_fails:
            return self._crashed(worker, "the container crashed during start")
        if worker.boot_crashes < config.crash_loop:
            worker.boot_crashes += 1
            return self._crashed(worker, f"crash loop (crash {worker.boot_crashes})")
        try:
            worker.local_url = await worker.swarm.start(host="127.0.0.1", port=0)
        except OSError as exc:
            return self._crashed(worker, f"its SwarmUI could not listen ({exc})")
        worker.public_url = proxy_url(worker.id) if config.proxy_urls else worker.local_url
        if self.config.protocol == "v2":
            worker.swarm.set_gateway_token(None)  # closed until a lease hands out a token
        if self.config.handler_command is not None:
            return True  # hosted: ready at its process's first job-take
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
                return self._assign(worker)
            await self._changed.wait()

    def _assign(self, worker: EmulatedWorker) -> EmulatedJob:
        """Hand the next queued job (FIFO, normal priority first) to ``worker``."""
        job = min(self._queue, key=lambda j: j.low_priority)
        self._queue.remove(job)
        job.status = JobStatus.IN_PROGRESS.value
        job.started_at = anyio.current_time()
        job.worker_id = worker.id
        worker.job_ids.append(job.id)
        worker.state = WorkerState.RUNNING
        self._changed.notify()
        return job

    async def _execute(self, worker: EmulatedWorker, job: EmulatedJob) -> bool:
        """Run ``job``; return whether the worker goes on serving."""
        timeout_s = job.execution_timeout_s(self.config.execution_timeout_s)
        deaths = self.faults.worker_deaths
        dies_after_s = deaths.popleft() if deaths else math.inf
        outcome: Outcome | None = None
        with anyio.move_on_after(timeout_s):
            with anyio.move_on_after(dies_after_s) as death:
                handler = builtin_handler(self.config.protocol)
                context = HandlerContext(self, worker, job)
                try:
                    outcome = outcome_of_value(await handler(context))
                except Exception as exc:
                    outcome = outcome_of_exception(exc, worker_id=worker.id)
            if death.cancelled_caught:
                self.kill_worker(worker.id, "injected fault: died mid-job")
                return False
        if outcome is None:
            if job.state is JobStatus.IN_PROGRESS:
                self._finish(job, JobStatus.TIMED_OUT)
            self._stop_worker(worker, f"job {job.id} exceeded its execution timeout")
            return False
        kept = self._jobs.get(job.id) is job  # not deleted by its ttl meanwhile
        if kept and job.state is JobStatus.IN_PROGRESS and job.worker_id == worker.id:
            job.output, job.error = outcome.output, outcome.error
            self._finish(job, outcome.status)
        worker.current_job_id = None
        worker.state = WorkerState.IDLE
        self._changed.notify()
        return True

    # -- the worker side of a hosted endpoint (runpod-api.md §6.3) -------------------------

    def hosted_worker(self, worker_id: str, key: str) -> EmulatedWorker | None:
        """The worker ``worker_id`` if ``key`` is its current process's key, else None."""
        worker = self._worker_by_id(worker_id)
        if worker is None or self.config.handler_command is None:
            return None
        if not hmac.compare_digest(worker.api_key.reveal().encode(), key.encode()):
            return None
        return worker

    async def take_jobs(
        self, worker: EmulatedWorker, count: int, wait_s: float
    ) -> list[EmulatedJob]:
        """A hosted worker's job-take: up to ``count`` jobs, waiting up to ``wait_s`` for one.

        The first take of a process makes its worker ready (INITIALIZING -> IDLE). A stopped,
        unhealthy or replaced process gets nothing.
        """
        key = worker.api_key
        if worker.state is WorkerState.INITIALIZING and worker.process_id is not None:
            worker.state = WorkerState.IDLE
            worker.ready_at = anyio.current_time()
            _log.info("[Emulator] %s: worker %s ready", self.endpoint_id, worker.id)
            self._changed.notify()

        def serving() -> bool:
            busy = (WorkerState.IDLE, WorkerState.RUNNING)
            return worker.state in busy and worker.api_key is key and not self._closing

        await self.wait_until(lambda: not serving() or bool(self._queue), wait_s)
        jobs: list[EmulatedJob] = []
        while serving() and self._queue and len(jobs) < count:
            jobs.append(self._assign(worker))
        return jobs

    async def stop_signals(self, worker: EmulatedWorker, wait_s: float) -> list[str]:
        """A hosted worker's stop channel: the ids of its jobs to stop, waiting up to ``wait_s``.

        Answers at once (with what is pending, maybe nothing) once the worker is stopped.
        """
        key = worker.api_key
        await self.wait_until(
            lambda: bool(worker.stop_job_ids) or not worker.live or worker.api_key is not key,
            wait_s,
        )
        job_ids, worker.stop_job_ids = worker.stop_job_ids, []
        return job_ids

    def result_from_worker(
        self, worker: EmulatedWorker, job_id: str, body: Mapping[str, Any]
    ) -> Delivery:
        """A hosted worker's job-done body: a result, or a progress update (spec §6.3, §6.4).

        ``{"status": "IN_PROGRESS", "output": X}`` is progress; otherwise ``error`` (any value)
        fails the job and ``output`` completes it. ``stopPod: true`` recycles the worker.
        """
        job = self._jobs.get(job_id)
        held = job is not None and self._holds(worker, job)
        if body.get("status") == JobStatus.IN_PROGRESS.value:
            if job is not None and held:
                self.report_progress(job.id, body.get("output"))
            return Delivery.ACCEPTED if held else self._not_held(job)
        if body.get("stopPod") is True and worker.state in (WorkerState.IDLE, WorkerState.RUNNING):
            worker.recycle = True
        self._release(worker, job_id)
        if job is None or not held:
            return self._not_held(job)
        error = body.get("error")
        job.output = body.get("output")
        if error is None:
            self._finish(job, JobStatus.COMPLETED)
        else:
            job.error = error if isinstance(error, str) else json.dumps(error)
            self._finish(job, JobStatus.FAILED)
        return Delivery.ACCEPTED

    def stream_from_worker(self, worker: EmulatedWorker, job_id: str, output: Any) -> Delivery:
        """A hosted worker's job-stream chunk (a generator handler's ``yield``)."""
        job = self._jobs.get(job_id)
        if job is None or not self._holds(worker, job):
            return self._not_held(job)
        self.emit_stream(job.id, output)
        return Delivery.ACCEPTED

    def ping_from_worker(
        self, worker: EmulatedWorker, job_ids: Sequence[str], unhealthy: str | None
    ) -> None:
        """A hosted worker's heartbeat: it is alive, running ``job_ids``.

        ``unhealthy`` (a failed fitness check, ``status=unhealthy``) marks it unhealthy: its
        jobs fail and its process is replaced after ``unhealthy_restart_s``.
        """
        if not worker.live:
            return
        worker.last_ping_at = anyio.current_time()
        worker.ping_job_ids = tuple(job_ids)
        worker.pings += 1
        if unhealthy is not None and worker.state is not WorkerState.UNHEALTHY:
            self._fail_held(worker, f"worker {worker.id} reported itself unhealthy: {unhealthy}")
            self._crashed(worker, f"it reported itself unhealthy: {unhealthy}")
        self._changed.notify()

    def _holds(self, worker: EmulatedWorker, job: EmulatedJob) -> bool:
        return (
            job.id in worker.job_ids
            and job.state is JobStatus.IN_PROGRESS
            and job.worker_id == worker.id
            and self._jobs.get(job.id) is job
        )

    def _not_held(self, job: EmulatedJob | None) -> Delivery:
        if job is None:
            return Delivery.UNKNOWN
        _log.debug("[Emulator] %s: late worker report for %s discarded", self.endpoint_id, job.id)
        return Delivery.DISCARDED

    def _release(self, worker: EmulatedWorker, job_id: str) -> None:
        """``worker`` no longer runs ``job_id``; with nothing left to run it is IDLE."""
        if job_id in worker.job_ids:
            worker.job_ids.remove(job_id)
            if not worker.job_ids and worker.state is WorkerState.RUNNING:
                worker.state = WorkerState.IDLE
            self._changed.notify()

    def _held_jobs(self, worker: EmulatedWorker) -> list[EmulatedJob]:
        jobs = (self._jobs.get(job_id) for job_id in worker.job_ids)
        return [job for job in jobs if job is not None and self._holds(worker, job)]

    def _fail_held(self, worker: EmulatedWorker, error: str) -> None:
        """FAIL every job ``worker`` is running, with ``error``."""
        for job in self._held_jobs(worker):
            job.error = error
            self._finish(job, JobStatus.FAILED)
        worker.job_ids.clear()

    async def _host(self, worker: EmulatedWorker) -> _HostEnd:
        """Run one process of the worker's handler and supervise it until it ends."""
        config = self.config
        assert config.handler_command is not None
        if self._base_url is None:
            raise RuntimeError("a hosted endpoint needs the emulator's base URL (open it)")
        worker.api_key = new_worker_key()
        worker.ready_at = worker.last_ping_at = None
        worker.recycle = False
        env = worker_env(
            base_url=self._base_url,
            endpoint_id=self.endpoint_id,
            worker_id=worker.id,
            api_key=worker.api_key.reveal(),
            ping_interval_s=config.ping_interval_s,
            extra=config.handler_env,
            swarm_url=worker.local_url,
        )
        process = WorkerProcess(
            worker.id,
            config.handler_command,
            env=env,
            cwd=config.handler_cwd,
            grace_s=config.handler_stop_grace_s,
            on_exit=self._changed.notify,
        )
        init_deadline = worker.state_since + config.init_timeout_s
        try:
            async with process:
                worker.process_id = process.pid
                while True:
                    step = self._hosted_step(worker, process, init_deadline)
                    if isinstance(step, _HostEnd):
                        if worker.live:  # crashed or recycled: revoke the old process's key,
                            worker.api_key = new_worker_key()  # which ends its long-polls
                            self._changed.notify()
                        return step
                    with anyio.move_on_after(step - anyio.current_time()):
                        await self._changed.wait()
        except OSError as exc:
            if process.started:
                raise
            self._crashed(worker, f"its process could not start ({exc})")  # no such program...
            return _HostEnd.GAVE_UP
        finally:
            if process.returncode is not None:
                worker.exit_codes.append(process.returncode)
            with anyio.CancelScope(shield=True):
                await worker.swarm.stop()  # a new process gets a fresh SwarmUI

    def _hosted_step(
        self, worker: EmulatedWorker, process: WorkerProcess, init_deadline: float
    ) -> _HostEnd | float:
        """Check a hosted worker; return how its process run ends, or when to look again."""
        config = self.config
        now = anyio.current_time()
        if worker.recycle:
            self._fail_held(worker, f"worker {worker.id} was recycled (stopPod)")
            _log.info("[Emulator] %s: recycling worker %s", self.endpoint_id, worker.id)
            return _HostEnd.RECYCLE
        if process.exited:
            return self._process_ended(worker, process)
        if worker.state is WorkerState.UNHEALTHY:
            return _HostEnd.CRASHED
        deadlines = [math.inf]
        if worker.state is WorkerState.INITIALIZING:
            if now >= init_deadline:
                self._crashed(worker, f"it took no job within {config.init_timeout_s:g} s")
                return _HostEnd.GAVE_UP
            deadlines.append(init_deadline)
        for job in self._held_jobs(worker):
            assert job.started_at is not None
            at = job.started_at + job.execution_timeout_s(config.execution_timeout_s)
            if now >= at:
                self._finish(job, JobStatus.TIMED_OUT)
                worker.stop_job_ids.append(job.id)
                self._stop_worker(worker, f"job {job.id} exceeded its execution timeout")
                return _HostEnd.STOPPED
            deadlines.append(at)
        if worker.ready_at is not None:
            silent_s = config.dead_after_missed_pings * config.ping_interval_s
            at = max(worker.ready_at, worker.last_ping_at or -math.inf) + silent_s
            if now >= at:
                why = f"no ping for {silent_s:g} s"
                self._fail_held(worker, f"worker {worker.id} died: {why}")
                self._crashed(worker, why)
                return _HostEnd.CRASHED
            deadlines.append(at)
        if worker.state is WorkerState.IDLE:
            at = worker.state_since + config.idle_timeout_s
            if now >= at:
                if len(self.running_workers()) > config.min_workers:
                    self._stop_worker(worker, "idle timeout")
                    return _HostEnd.STOPPED
                worker.state = WorkerState.IDLE  # a min worker: wait another idle timeout
                at = now + config.idle_timeout_s
            deadlines.append(at)
        return min(deadlines)

    def _process_ended(self, worker: EmulatedWorker, process: WorkerProcess) -> _HostEnd:
        """The process exited by itself: the worker crashed, its jobs FAIL with why."""
        why = f"its process exited with code {process.returncode}"
        tail = "\n".join(process.tail())
        self._fail_held(
            worker,
            f"worker {worker.id} crashed: {why}" + (f"; last output:\n{tail}" if tail else ""),
        )
        self._crashed(worker, why)
        return _HostEnd.CRASHED

    def _finish(self, job: EmulatedJob, status: JobStatus) -> None:
        job.status = status.value
        job.finished_at = anyio.current_time()
        job.progress = None
        _log.debug("[Emulator] %s: job %s %s", self.endpoint_id, job.id, status)
        if job.webhook and self._task_group is not None and not self._closing:
            body = job.to_api(job.finished_at)
            self._task_group.start_soon(self._webhook, job.id, job.webhook, body)
        self._changed.notify()

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

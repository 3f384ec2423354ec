"""The life of an emulated worker: start, wait for a host, boot, serve jobs, stop.

Each worker lives in the emulator's task group under its own cancel scope: stopping a worker
cancels that scope, which interrupts whatever its handler was doing. A worker of a built-in
image pulls jobs from the queue and runs them one at a time with its in-process handler
(:mod:`._handlers`); a hosted worker runs the user's handler as a process instead
(:mod:`._hosted_supervisor`). A boot may crash (``boot_fails``, ``crash_loop``, over
``init_timeout_s``): the worker turns unhealthy and boots again after ``unhealthy_restart_s``,
or stays unhealthy. A worker stopped recently is revived faster (FlashBoot).
"""

from __future__ import annotations

import logging
import math
import random
from typing import Final

import anyio

from orchestrator.emulator.swarm import FakeSwarmUI, SwarmFaults
from orchestrator.runpod import JobStatus

from ._board import EndpointBoard
from ._config import Duration
from ._handler_context import HandlerContext
from ._handlers import builtin_handler
from ._hosted_supervisor import HostEnd, run_hosted
from ._jobs import EmulatedJob, Outcome, outcome_of_exception, outcome_of_value
from ._queue import JobQueue
from ._worker import EmulatedWorker, WorkerState, new_worker_id, proxy_url

__all__ = ["FLASHBOOT_WINDOW_S", "WorkerLife"]

_log = logging.getLogger("swarmpod.emulator")

FLASHBOOT_WINDOW_S: Final = 600.0
"""A worker stopped at most this long ago can be revived with ``flashboot_start_s``."""

_HOSTED: Final = (WorkerState.INITIALIZING, WorkerState.IDLE, WorkerState.RUNNING)
"""Worker states that hold a host (count against the endpoint's capacity)."""


class WorkerLife:
    """Starts an endpoint's workers and runs each one's life.

    Attributes:
        swarm_faults: the fault script shared by the fake SwarmUI of every worker.
    """

    def __init__(self, board: EndpointBoard, queue: JobQueue) -> None:
        self._board = board
        self._queue = queue
        self._rng = random.Random(board.config.seed)
        self.swarm_faults = SwarmFaults()
        self._worker_swarm_faults: dict[int, SwarmFaults] = {}

    def worker_swarm_faults(self, ordinal: int) -> SwarmFaults:
        """The fault script of one worker's fake SwarmUI: the ``ordinal``-th started (1 = first).

        That worker's SwarmUI follows this script instead of the shared :attr:`swarm_faults`;
        script it before the worker starts (a worker that already runs keeps its script).
        """
        if ordinal < 1:
            raise ValueError("worker ordinals start at 1")
        return self._worker_swarm_faults.setdefault(ordinal, SwarmFaults())

    def start_worker(self, reason: str) -> None:
        """Start one worker (a FlashBoot revival if one stopped recently); ``reason`` is logged."""
        board = self._board
        assert board.task_group is not None, "the endpoint is not open"
        now = anyio.current_time()
        recent = [t for t in board.stopped_at if now - t <= FLASHBOOT_WINDOW_S]
        flashboot = board.config.flashboot_start_s is not None and bool(recent)
        if flashboot:
            board.stopped_at.remove(recent[0])
        worker_id = new_worker_id()
        faults = self._worker_swarm_faults.get(len(board.workers) + 1, self.swarm_faults)
        swarm = FakeSwarmUI(board.config.swarm, faults=faults, worker_id=worker_id)
        state = WorkerState.INITIALIZING
        if not self._has_host(None):
            state = WorkerState.THROTTLED
        worker = EmulatedWorker(worker_id, swarm, started_at=now, flashboot=flashboot, state=state)
        board.workers.append(worker)
        _log.info("[Emulator] %s: starting worker %s (%s)", board.endpoint_id, worker_id, reason)
        board.task_group.start_soon(self._main, worker, name=f"worker {worker_id}")
        board.notify()

    def kill_worker(self, worker_id: str, reason: str) -> None:
        """Kill a live worker at once: its running job FAILS, it and its SwarmUI stop."""
        worker = self._board.worker_by_id(worker_id)
        if worker is None:
            raise KeyError(worker_id)
        self._board.fail_held(worker, f"worker {worker.id} died: {reason}")
        self._board.stop_worker(worker, reason)

    def _capacity(self) -> int | None:
        capacity = self._board.faults.capacity
        return self._board.config.capacity if capacity == "config" else capacity

    def _has_host(self, worker: EmulatedWorker | None) -> bool:
        capacity = self._capacity()
        if capacity is None:
            return True
        hosted = sum(w.state in _HOSTED for w in self._board.workers if w is not worker)
        return hosted < capacity

    async def _main(self, worker: EmulatedWorker) -> None:
        board = self._board
        config = board.config
        hosted = config.handler_command is not None
        try:
            with worker.scope:
                while True:
                    await self._wait_for_host(worker)
                    booted = await self._boot(worker)
                    if booted and not hosted:
                        await self._serve(worker)
                        return
                    if booted:
                        ended = await run_hosted(board, worker)
                        if not worker.live or ended in (HostEnd.STOPPED, HostEnd.GAVE_UP):
                            return
                        if ended is HostEnd.CRASHED:
                            await anyio.sleep(config.unhealthy_restart_s)
                    elif worker.boot_crashes == 0 or worker.boot_crashes > config.crash_loop:
                        return  # unhealthy for good: it keeps its slot, unbilled
                    else:
                        await anyio.sleep(config.unhealthy_restart_s)
                    worker.state = WorkerState.INITIALIZING
                    board.notify()
        finally:
            with anyio.CancelScope(shield=True):
                await worker.swarm.stop()

    async def _wait_for_host(self, worker: EmulatedWorker) -> None:
        """Stay THROTTLED (unbilled) until host capacity lets the worker boot."""
        board = self._board
        while not self._has_host(worker):
            if worker.state is not WorkerState.THROTTLED:
                worker.state = WorkerState.THROTTLED
                board.notify()
            await board.changed()
        if worker.state is WorkerState.THROTTLED:
            worker.state = WorkerState.INITIALIZING
            board.notify()

    def _draw(self, duration: Duration) -> float:
        if isinstance(duration, tuple):
            return self._rng.uniform(*duration)
        return duration

    async def _boot(self, worker: EmulatedWorker) -> bool:
        board = self._board
        config = board.config
        boot = config.cold_start_s
        if worker.flashboot and config.flashboot_start_s is not None:
            boot = config.flashboot_start_s
        boot_s = self._draw(boot)
        if boot_s > config.init_timeout_s:
            await anyio.sleep(config.init_timeout_s)
            return board.crashed(worker, f"its start took over {config.init_timeout_s:g} s")
        await anyio.sleep(boot_s)
        if config.boot_fails:
            return board.crashed(worker, "the container crashed during start")
        if worker.boot_crashes < config.crash_loop:
            worker.boot_crashes += 1
            return board.crashed(worker, f"crash loop (crash {worker.boot_crashes})")
        try:
            worker.local_url = await worker.swarm.start(host="127.0.0.1", port=0)
        except OSError as exc:
            return board.crashed(worker, f"its SwarmUI could not listen ({exc})")
        worker.public_url = proxy_url(worker.id) if config.proxy_urls else worker.local_url
        if config.protocol == "v2":
            worker.swarm.set_gateway_token(None)  # closed until a lease hands out a token
        if config.handler_command is not None:
            return True  # hosted: ready at its process's first job-take
        worker.session_id = worker.swarm.create_session()
        worker.state = WorkerState.IDLE
        _log.info("[Emulator] %s: worker %s ready", board.endpoint_id, worker.id)
        board.notify()
        return True

    async def _serve(self, worker: EmulatedWorker) -> None:
        board = self._board
        while True:
            job: EmulatedJob | None = None
            with anyio.move_on_after(board.config.idle_timeout_s):
                job = await self._queue.take(worker)
            if job is None:
                if len(board.running_workers()) > board.config.min_workers:
                    board.stop_worker(worker, "idle timeout")
                    return
                continue
            if not await self._execute(worker, job):
                return

    async def _execute(self, worker: EmulatedWorker, job: EmulatedJob) -> bool:
        """Run ``job``; return whether the worker goes on serving."""
        board = self._board
        timeout_s = job.execution_timeout_s(board.config.execution_timeout_s)
        deaths = board.faults.worker_deaths
        dies_after_s = deaths.popleft() if deaths else math.inf
        outcome: Outcome | None = None
        stopped = worker.job_scopes[job.id] = anyio.CancelScope()
        try:
            with anyio.move_on_after(timeout_s):
                with anyio.move_on_after(dies_after_s) as death, stopped:
                    handler = builtin_handler(board.config.protocol)
                    context = HandlerContext(worker, job, faults=board.faults, queue=self._queue)
                    try:
                        outcome = outcome_of_value(await handler(context))
                    except Exception as exc:
                        outcome = outcome_of_exception(exc, worker_id=worker.id)
                if death.cancelled_caught:
                    self.kill_worker(worker.id, "injected fault: died mid-job")
                    return False
        finally:
            del worker.job_scopes[job.id]
        if stopped.cancelled_caught:  # cancelled alone (JobQueue.stop_job): the worker goes on
            return True
        if outcome is None:
            if job.state is JobStatus.IN_PROGRESS:
                board.finish(job, JobStatus.TIMED_OUT)
            board.stop_worker(worker, f"job {job.id} exceeded its execution timeout")
            return False
        kept = board.jobs.get(job.id) is job  # not deleted by its ttl meanwhile
        if kept and job.state is JobStatus.IN_PROGRESS and job.worker_id == worker.id:
            job.output, job.error = outcome.output, outcome.error
            board.finish(job, outcome.status)
        worker.current_job_id = None
        worker.state = WorkerState.IDLE
        board.notify()
        return True

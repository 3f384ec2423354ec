"""A hosted worker's process run: start the user's handler, supervise it until it ends.

On a hosted endpoint (``EndpointConfig.handler_command``) each boot of a worker starts a process
of the user's handler (:mod:`._hosted_process`), which speaks RunPod's worker protocol to the worker
routes (:mod:`._hosted_channel`). The worker is INITIALIZING (billed boot) until its first
job-take, IDLE or RUNNING after. Its task only supervises the process: the init, execution and
idle timeouts, missed pings, a process that exits by itself (crashed: unhealthy, restarted after
``unhealthy_restart_s``) and ``stopPod`` (recycled: a fresh process, billed boot again).
"""

from __future__ import annotations

import enum
import logging
import math

import anyio

from orchestrator.runpod import JobStatus

from ._board import EndpointBoard
from ._hosted_process import WorkerProcess, worker_env
from ._worker import EmulatedWorker, WorkerState, new_worker_key

__all__ = ["HostEnd", "run_hosted"]

_log = logging.getLogger("swarmpod.emulator")


class HostEnd(enum.Enum):
    """How a hosted worker's process run ended."""

    STOPPED = "stopped"  # the worker was stopped (idle, timeout, cancel, kill, close)
    RECYCLE = "recycle"  # stopPod: start a fresh process
    CRASHED = "crashed"  # unhealthy: restart after unhealthy_restart_s
    GAVE_UP = "gave up"  # unhealthy for good (never started, init timeout)


async def run_hosted(board: EndpointBoard, worker: EmulatedWorker) -> HostEnd:
    """Run one process of the worker's handler and supervise it until it ends."""
    config = board.config
    assert config.handler_command is not None
    if board.base_url is None:
        raise RuntimeError("a hosted endpoint needs the emulator's base URL (open it)")
    worker.api_key = new_worker_key()
    worker.ready_at = worker.last_ping_at = None
    worker.recycle = False
    env = worker_env(
        base_url=board.base_url,
        endpoint_id=board.endpoint_id,
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
        on_exit=board.notify,
    )
    init_deadline = worker.state_since + config.init_timeout_s
    try:
        async with process:
            worker.process_id = process.pid
            while True:
                step = _step(board, worker, process, init_deadline)
                if isinstance(step, HostEnd):
                    if worker.live:  # crashed or recycled: revoke the old process's key,
                        worker.api_key = new_worker_key()  # which ends its long-polls
                        board.notify()
                    return step
                with anyio.move_on_after(step - anyio.current_time()):
                    await board.changed()
    except OSError as exc:
        if process.started:
            raise
        board.crashed(worker, f"its process could not start ({exc})")  # no such program...
        return HostEnd.GAVE_UP
    finally:
        if process.returncode is not None:
            worker.exit_codes.append(process.returncode)
        with anyio.CancelScope(shield=True):
            await worker.swarm.stop()  # a new process gets a fresh SwarmUI


def _step(
    board: EndpointBoard, worker: EmulatedWorker, process: WorkerProcess, init_deadline: float
) -> HostEnd | float:
    """Check a hosted worker; return how its process run ends, or when to look again."""
    config = board.config
    now = anyio.current_time()
    if worker.recycle:
        board.fail_held(worker, f"worker {worker.id} was recycled (stopPod)")
        _log.info("[Emulator] %s: recycling worker %s", board.endpoint_id, worker.id)
        return HostEnd.RECYCLE
    if process.exited:
        return _process_ended(board, worker, process)
    if worker.state is WorkerState.UNHEALTHY:
        return HostEnd.CRASHED
    deadlines = [math.inf]
    if worker.state is WorkerState.INITIALIZING:
        if now >= init_deadline:
            board.crashed(worker, f"it took no job within {config.init_timeout_s:g} s")
            return HostEnd.GAVE_UP
        deadlines.append(init_deadline)
    for job in board.held_jobs(worker):
        assert job.started_at is not None
        at = job.started_at + job.execution_timeout_s(config.execution_timeout_s)
        if now >= at:
            board.finish(job, JobStatus.TIMED_OUT)
            worker.stop_job_ids.append(job.id)
            board.stop_worker(worker, f"job {job.id} exceeded its execution timeout")
            return HostEnd.STOPPED
        deadlines.append(at)
    if worker.ready_at is not None:
        silent_s = config.dead_after_missed_pings * config.ping_interval_s
        at = max(worker.ready_at, worker.last_ping_at or -math.inf) + silent_s
        if now >= at:
            why = f"no ping for {silent_s:g} s"
            board.fail_held(worker, f"worker {worker.id} died: {why}")
            board.crashed(worker, why)
            return HostEnd.CRASHED
        deadlines.append(at)
    if worker.state is WorkerState.IDLE:
        at = worker.state_since + config.idle_timeout_s
        if now >= at:
            if len(board.running_workers()) > config.min_workers:
                board.stop_worker(worker, "idle timeout")
                return HostEnd.STOPPED
            worker.state = WorkerState.IDLE  # a min worker: wait another idle timeout
            at = now + config.idle_timeout_s
        deadlines.append(at)
    return min(deadlines)


def _process_ended(board: EndpointBoard, worker: EmulatedWorker, process: WorkerProcess) -> HostEnd:
    """The process exited by itself: the worker crashed, its jobs FAIL with why."""
    why = f"its process exited with code {process.returncode}"
    tail = "\n".join(process.tail())
    board.fail_held(
        worker,
        f"worker {worker.id} crashed: {why}" + (f"; last output:\n{tail}" if tail else ""),
    )
    board.crashed(worker, why)
    return HostEnd.CRASHED

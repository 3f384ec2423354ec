"""The worker side of a hosted endpoint: what a hosted handler's process asks and reports.

The worker routes (:mod:`._worker_api`, runpod-api.md §6.3) call these: a process proves who it
is with its key, takes jobs, listens on its stop channel, and reports results, progress,
stream chunks and pings. A report about a job that is no longer the worker's is dropped, as
RunPod drops a late result.
"""

from __future__ import annotations

import enum
import hmac
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import anyio

from orchestrator.runpod import JobStatus

from ._board import EndpointBoard
from ._jobs import EmulatedJob
from ._queue import JobQueue
from ._worker import EmulatedWorker, WorkerState

__all__ = ["Delivery", "HostedChannel"]

_log = logging.getLogger("swarmpod.emulator")


class Delivery(enum.Enum):
    """What became of a hosted worker's result, progress or stream chunk."""

    ACCEPTED = "accepted"
    """Recorded on the job."""
    DISCARDED = "discarded"
    """The job is no longer this worker's (cancelled, timed out, finished): dropped, as RunPod
    drops a late result (runpod-api.md §8 item 12)."""
    UNKNOWN = "unknown"
    """No such job (never existed, purged, or deleted by its ttl or retention)."""


class HostedChannel:
    """The worker-facing API of one hosted endpoint."""

    def __init__(self, board: EndpointBoard, queue: JobQueue) -> None:
        self._board = board
        self._queue = queue

    def authenticate(self, worker_id: str, key: str) -> EmulatedWorker | None:
        """The worker ``worker_id`` if ``key`` is its current process's key, else None."""
        worker = self._board.worker_by_id(worker_id)
        if worker is None or self._board.config.handler_command is None:
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
        board = self._board
        key = worker.api_key
        if worker.state is WorkerState.INITIALIZING and worker.process_id is not None:
            worker.state = WorkerState.IDLE
            worker.ready_at = anyio.current_time()
            _log.info("[Emulator] %s: worker %s ready", board.endpoint_id, worker.id)
            board.notify()

        def serving() -> bool:
            busy = (WorkerState.IDLE, WorkerState.RUNNING)
            return worker.state in busy and worker.api_key is key and not board.closing

        await board.wait_until(lambda: not serving() or bool(board.queue), wait_s)
        jobs: list[EmulatedJob] = []
        while serving() and board.queue and len(jobs) < count:
            jobs.append(self._queue.assign(worker))
        return jobs

    async def stop_signals(self, worker: EmulatedWorker, wait_s: float) -> list[str]:
        """A hosted worker's stop channel: the ids of its jobs to stop, waiting up to ``wait_s``.

        Answers at once (with what is pending, maybe nothing) once the worker is stopped.
        """
        key = worker.api_key
        await self._board.wait_until(
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
        board = self._board
        job = board.jobs.get(job_id)
        held = job is not None and board.holds(worker, job)
        if body.get("status") == JobStatus.IN_PROGRESS.value:
            if job is not None and held:
                self._queue.report_progress(job.id, body.get("output"))
            return Delivery.ACCEPTED if held else self._not_held(job)
        if body.get("stopPod") is True and worker.state in (WorkerState.IDLE, WorkerState.RUNNING):
            worker.recycle = True
        self._release(worker, job_id)
        if job is None or not held:
            return self._not_held(job)
        error = body.get("error")
        job.output = body.get("output")
        if error is None:
            board.finish(job, JobStatus.COMPLETED)
        else:
            job.error = error if isinstance(error, str) else json.dumps(error)
            board.finish(job, JobStatus.FAILED)
        return Delivery.ACCEPTED

    def stream_from_worker(self, worker: EmulatedWorker, job_id: str, output: Any) -> Delivery:
        """A hosted worker's job-stream chunk (a generator handler's ``yield``)."""
        job = self._board.jobs.get(job_id)
        if job is None or not self._board.holds(worker, job):
            return self._not_held(job)
        self._queue.emit_stream(job.id, output)
        return Delivery.ACCEPTED

    def ping_from_worker(
        self, worker: EmulatedWorker, job_ids: Sequence[str], unhealthy: str | None
    ) -> None:
        """A hosted worker's heartbeat: it is alive, running ``job_ids``.

        ``unhealthy`` (a failed fitness check, ``status=unhealthy``) marks it unhealthy: its
        jobs fail and its process is replaced after ``unhealthy_restart_s``.
        """
        board = self._board
        if not worker.live:
            return
        worker.last_ping_at = anyio.current_time()
        worker.ping_job_ids = tuple(job_ids)
        worker.pings += 1
        if unhealthy is not None and worker.state is not WorkerState.UNHEALTHY:
            board.fail_held(worker, f"worker {worker.id} reported itself unhealthy: {unhealthy}")
            board.crashed(worker, f"it reported itself unhealthy: {unhealthy}")
        board.notify()

    def _not_held(self, job: EmulatedJob | None) -> Delivery:
        if job is None:
            return Delivery.UNKNOWN
        _log.debug(
            "[Emulator] %s: late worker report for %s discarded", self._board.endpoint_id, job.id
        )
        return Delivery.DISCARDED

    def _release(self, worker: EmulatedWorker, job_id: str) -> None:
        """``worker`` no longer runs ``job_id``; with nothing left to run it is IDLE."""
        if job_id in worker.job_ids:
            worker.job_ids.remove(job_id)
            if not worker.job_ids and worker.state is WorkerState.RUNNING:
                worker.state = WorkerState.IDLE
            self._board.notify()

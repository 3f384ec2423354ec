"""The job queue of an emulated endpoint: submit, hand out, retry, cancel, purge, output.

Workers pull jobs FIFO, normal priority before ``lowPriority`` (runpod-api.md §2.1).
"""

from __future__ import annotations

import logging
from typing import Any

import anyio

from orchestrator.runpod import JobStatus

from ._board import EndpointBoard
from ._jobs import EmulatedJob, new_job_id
from ._worker import EmulatedWorker, WorkerState

__all__ = ["JobQueue"]

_log = logging.getLogger("swarmpod.emulator")

_HEALTH_KEYS = {
    JobStatus.COMPLETED: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.TIMED_OUT: "failed",
    JobStatus.IN_PROGRESS: "inProgress",
    JobStatus.IN_QUEUE: "inQueue",
}


class JobQueue:
    """The jobs of one endpoint, from ``/run`` to their result."""

    def __init__(self, board: EndpointBoard) -> None:
        self._board = board
        self._retried = 0

    def submit(
        self, job_input: Any, policy: dict[str, Any], webhook: str | None, *, sync: bool
    ) -> EmulatedJob:
        """Queue a new job (``/run``, ``/runsync``)."""
        board = self._board
        job = EmulatedJob(
            id=new_job_id(sync=sync),
            input=job_input,
            policy=policy,
            webhook=webhook,
            submitted_at=anyio.current_time(),
            sync=sync,
        )
        board.jobs[job.id] = job
        board.queue.append(job)
        _log.debug("[Emulator] %s: job %s queued", board.endpoint_id, job.id)
        board.notify()
        return job

    def assign(self, worker: EmulatedWorker) -> EmulatedJob:
        """Hand the next queued job (FIFO, normal priority first) to ``worker``."""
        board = self._board
        job = min(board.queue, key=lambda j: j.low_priority)
        board.queue.remove(job)
        job.status = JobStatus.IN_PROGRESS.value
        job.started_at = anyio.current_time()
        job.worker_id = worker.id
        worker.job_ids.append(job.id)
        worker.state = WorkerState.RUNNING
        board.notify()
        return job

    async def take(self, worker: EmulatedWorker) -> EmulatedJob:
        """Wait for a queued job and hand it to ``worker``."""
        while True:
            if self._board.queue:
                return self.assign(worker)
            await self._board.changed()

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
        self._board.queue.append(job)
        self._board.notify()
        return True

    def cancel(self, job: EmulatedJob) -> None:
        """Cancel a job: a queued one is never taken; a running one is stopped alone.

        As with runpod SDK >= 1.10 (``rp_scale``: the stop channel cancels that job's task),
        the worker stays up, idle, and goes on serving or idles out after the endpoint's idle
        timeout. A hosted worker finds the job on its stop channel (``jobsToStop``); a
        built-in worker's handler is cancelled. (A hosted *synchronous* handler cannot be
        interrupted by the SDK: its process runs on, and the worker idles out under it.)
        """
        board = self._board
        if job.state is JobStatus.IN_QUEUE:
            board.queue.remove(job)
            board.finish(job, JobStatus.CANCELLED)
        elif job.state is JobStatus.IN_PROGRESS:
            board.finish(job, JobStatus.CANCELLED)
            worker = board.worker_by_id(job.worker_id)
            if worker is not None and worker.live:
                self.stop_job(worker, job.id)

    def stop_job(self, worker: EmulatedWorker, job_id: str) -> None:
        """Stop ``job_id`` on ``worker`` and free the worker of it (IDLE when nothing is left)."""
        board = self._board
        if board.config.handler_command is not None:
            worker.stop_job_ids.append(job_id)
        scope = worker.job_scopes.get(job_id)
        if scope is not None:
            scope.cancel()
        if job_id in worker.job_ids:
            worker.job_ids.remove(job_id)
            if not worker.job_ids and worker.state is WorkerState.RUNNING:
                worker.state = WorkerState.IDLE
        board.notify()

    def purge(self) -> int:
        """Remove every queued job (they are forgotten, as on RunPod); return how many."""
        board = self._board
        removed = len(board.queue)
        for job in board.queue:
            del board.jobs[job.id]
        board.queue.clear()
        board.notify()
        return removed

    def emit_stream(self, job_id: str, output: Any) -> None:
        """Append one streamed output to a job, as a generator handler's ``yield`` does."""
        self._board.jobs[job_id].stream.append(output)
        self._board.notify()

    def report_progress(self, job_id: str, output: Any) -> None:
        """A worker's ``progress_update``: an IN_PROGRESS job shows ``output`` in ``/status``.

        Ignored unless the job is IN_PROGRESS (a late update never revives a finished job).
        """
        job = self._board.jobs.get(job_id)
        if job is not None and job.state is JobStatus.IN_PROGRESS:
            job.progress = output
            self._board.notify()

    def health(self) -> dict[str, int]:
        """The ``jobs`` object of ``/health`` (spec §2.9).

        ``completed``/``failed`` count every job kept (TIMED_OUT counts as failed); ``retried``
        counts ``/retry`` calls.
        """
        jobs = {"completed": 0, "failed": 0, "inProgress": 0, "inQueue": 0}
        for job in self._board.jobs.values():
            key = _HEALTH_KEYS.get(job.state)
            if key is not None:
                jobs[key] += 1
        jobs["retried"] = self._retried
        return jobs

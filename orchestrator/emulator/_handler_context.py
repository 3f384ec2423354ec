"""What a built-in worker image's handler sees of its job: the worker, the job, its channels."""

from __future__ import annotations

from typing import Any

from ._faults import EndpointFaults
from ._jobs import EmulatedJob
from ._queue import JobQueue
from ._worker import EmulatedWorker

__all__ = ["HandlerContext"]


class HandlerContext:
    """What a built-in handler sees of its job: the worker, the job, and the output channels.

    Attributes:
        worker: the worker running it.
        job: the job.
        faults: the fault script of the job's endpoint (the lease faults of the v2 image).
    """

    def __init__(
        self, worker: EmulatedWorker, job: EmulatedJob, *, faults: EndpointFaults, queue: JobQueue
    ) -> None:
        self.worker = worker
        self.job = job
        self.faults = faults
        self._queue = queue

    @property
    def input(self) -> Any:
        """The job's ``input``, as sent."""
        return self.job.input

    def stream(self, output: Any) -> None:
        """Stream one output (a generator handler's ``yield``)."""
        self._queue.emit_stream(self.job.id, output)

    def progress(self, output: Any) -> None:
        """Send a progress update (``runpod.serverless.progress_update``)."""
        self._queue.report_progress(self.job.id, output)

    def cancel(self) -> None:
        """Cancel the job as ``/cancel`` does: this handler is stopped, its worker goes idle."""
        self._queue.cancel(self.job)

"""Worker protocol v1 ("wakeup / keepalive", HartsyAI RunPod-Worker-SwarmUI).

specs/worker-protocols.md: a ``wakeup`` job completes once the worker's SwarmUI answers; a
``keepalive`` job submitted at once keeps the worker from idling out; cancelling the keepalive
releases the worker (``shutdown`` only acknowledges and is never used as a release).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import anyio

from ..errors import (
    JobFailedError,
    OrchestratorError,
    Phase,
    ProtocolMismatchError,
    WorkerProtocolError,
)
from ..runpod import Job, JobPolicy, JobStatus, RunPodClient
from ._handle import WakeReceipt, WorkerHandle

__all__ = ["V1Protocol", "WakeWatcher", "receipt_from"]

log = logging.getLogger("swarmpod.workers")

WakeWatcher = Callable[[Job], None]
"""Called with every status seen while waiting for the wake-up job."""

# The keepalive must outlive everything a generation may still do; RunPod's own execution
# timeout is set above it so the job is never TIMED_OUT while held (worker-protocols.md).
_KEEPALIVE_MARGIN_S = 60
_KEEPALIVE_INTERVAL_S = 30


@dataclass
class V1Protocol:
    """Drives one v1 worker through wake-up, hold and release for one generation.

    Attributes:
        client: the RunPod client (carrying the key this generation uses).
        use_async: ``/run`` + ``/status`` polling (True) or ``/runsync`` (False) for wake-up.
        poll_interval: seconds between status polls (PollIntervalMs).
        hold_seconds: how long the keepalive may hold the worker at most.
    """

    client: RunPodClient
    use_async: bool
    poll_interval: float
    hold_seconds: float
    name: str = "v1"

    async def submit_wakeup(self) -> Job:
        """Submit the wake-up job; returns it as RunPod accepted it."""
        body = {"action": "wakeup"}
        if self.use_async:
            return await self.client.run(body)
        return await self.client.runsync(body, wait_ms=_runsync_wait_ms(self.poll_interval))

    async def wait_until_woken(self, job: Job, *, watch: WakeWatcher | None = None) -> WakeReceipt:
        """Poll the wake-up job until it completes; the caller bounds this with a deadline."""
        while not job.state.is_terminal:
            if watch is not None:
                watch(job)
            await anyio.sleep(self.poll_interval)
            job = await self.client.status(job.id)
        if watch is not None:
            watch(job)
        return receipt_from(job)

    async def hold(self, receipt: WakeReceipt) -> WorkerHandle:
        """Submit the keepalive at once, so the woken worker does not idle out."""
        duration = math.ceil(self.hold_seconds)
        policy = JobPolicy(execution_timeout_ms=(duration + _KEEPALIVE_MARGIN_S) * 1000)
        job = await self.client.run(
            {"action": "keepalive", "duration": duration, "interval": _KEEPALIVE_INTERVAL_S},
            policy=policy,
        )
        log.info(
            "[RunPodServerless] keepalive %s holds worker %s for up to %d s",
            job.id,
            receipt.worker_id,
            duration,
        )
        return WorkerHandle(receipt=receipt, protocol=self.name, hold_job_id=job.id)

    async def confirm_hold(self, handle: WorkerHandle) -> None:
        """Watch the keepalive until a worker runs it; warn if it landed on another worker.

        Keepalive jobs are not tied to a worker (worker-protocols.md, pitfalls): on a
        multi-worker endpoint it can start a second worker while the woken one idles out.
        """
        if handle.hold_job_id is None:
            return
        while True:
            job = await self.client.status(handle.hold_job_id)
            if job.state.is_terminal:
                raise JobFailedError(
                    f"The keepalive job ended {job.status} while the worker was in use; the "
                    "worker may stop mid-generation. Check the endpoint's execution timeout.",
                    job_status=job.status,
                    error_text=job.error,
                    job_id=job.id,
                    worker_id=handle.worker_id,
                )
            if job.state is not JobStatus.IN_QUEUE:
                if job.worker_id and job.worker_id != handle.worker_id:
                    log.warning(
                        "[RunPodServerless] keepalive %s runs on worker %s, not on the woken "
                        "worker %s: that one may idle out. Raise the endpoint's idle timeout.",
                        job.id,
                        job.worker_id,
                        handle.worker_id,
                    )
                return
            await anyio.sleep(self.poll_interval)

    async def release(self, *, wake_job: Job | None, handle: WorkerHandle | None) -> list[str]:
        """Give the worker back: cancel the keepalive, and a wake-up job still pending.

        Returns the job ids cancelled. Errors are logged, never raised: releasing runs on
        every path, including after failures, and must try every job.
        """
        to_cancel: list[str] = []
        if handle is not None and handle.hold_job_id is not None:
            to_cancel.append(handle.hold_job_id)
        if wake_job is not None and not wake_job.state.is_terminal:
            to_cancel.append(wake_job.id)
        cancelled: list[str] = []
        for job_id in to_cancel:
            try:
                await self.client.cancel(job_id)
            except OrchestratorError as exc:
                log.warning(
                    "[RunPodServerless] could not cancel job %s: %s; it stops at its "
                    "execution timeout at the latest",
                    job_id,
                    exc,
                )
            else:
                cancelled.append(job_id)
        return cancelled


def _runsync_wait_ms(poll_interval: float) -> int:
    # /runsync holds at most 300 s; a cold start longer than that continues with /status.
    return 90_000 if poll_interval < 90 else 300_000


V2_REFUSAL: Final = "Unknown action: wakeup"
"""What a v2 (lease) worker answers to a wake-up: the endpoint was upgraded."""


def receipt_from(job: Job) -> WakeReceipt:
    """The worker a completed wake-up job woke (raises why when it did not)."""
    answer = job.output if isinstance(job.output, dict) else {}
    if any(V2_REFUSAL in str(text or "") for text in (job.error, answer.get("error"))):
        raise ProtocolMismatchError(
            detected="v2", job_id=job.id, worker_id=job.worker_id, phase=Phase.POLLING
        )
    if job.state is not JobStatus.COMPLETED:
        raise JobFailedError(
            f"The wake-up job ended {job.status}"
            + (f": {job.error}" if job.error else "")
            + ". Check the worker's logs in the RunPod console.",
            job_status=job.status,
            error_text=job.error,
            job_id=job.id,
            worker_id=job.worker_id,
            phase=Phase.POLLING,
        )
    output: Any = job.output
    if not isinstance(output, dict):
        raise WorkerProtocolError(
            "The wake-up job completed without an output object; is this a SwarmUI worker "
            "(HartsyAI RunPod-Worker-SwarmUI)?",
            job_id=job.id,
            phase=Phase.POLLING,
        )
    if output.get("success") is not True:
        error = output.get("error") or "no reason given"
        raise JobFailedError(
            f"The worker refused the wake-up: {error}",
            job_status=job.status,
            error_text=str(error),
            job_id=job.id,
            phase=Phase.POLLING,
        )
    public_url = output.get("public_url")
    worker_id = output.get("worker_id") or job.worker_id
    if not isinstance(public_url, str) or not public_url or not isinstance(worker_id, str):
        raise WorkerProtocolError(
            "The wake-up output lacks public_url or worker_id; the worker image is too old "
            "or not a SwarmUI worker.",
            job_id=job.id,
            phase=Phase.POLLING,
        )
    session_id = output.get("session_id")
    return WakeReceipt(
        worker_id=worker_id,
        public_url=public_url.rstrip("/"),
        session_id=session_id if isinstance(session_id, str) else None,
        delay_ms=job.delay_time,
        execution_ms=job.execution_time,
    )

"""Worker protocol v2 (leases; HartsyAI worker image 2.x), the client side.

specs/worker-protocols.md: one long-running ``lease`` job holds one worker. Its first streamed
output is the lease (``public_url`` + a bearer ``token`` for the worker's SwarmUI gateway);
the worker ends the job itself after ``idle_seconds`` without a generation or at
``max_lease_seconds``; swarmpod releases early with ``/cancel``. A v1 endpoint refuses the
action with ``Unknown action: lease``, which :class:`~orchestrator.errors.ProtocolMismatchError`
reports so the caller can fall back to v1.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
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
from ..secrets import Secret
from ._handle import WakeReceipt, WorkerHandle

__all__ = ["LeaseTerms", "LeaseWatcher", "V2Protocol"]

log = logging.getLogger("swarmpod.workers")

LeaseWatcher = Callable[[JobStatus], None]
"""Called with the lease job's status at every poll while waiting for the lease."""

V1_REFUSAL: Final = "Unknown action: lease"
"""What a v1 worker answers to a lease request (the detection fact of worker-protocols.md)."""

# RunPod's own execution timeout sits above the longest lease, so RunPod never ends a lease
# as TIMED_OUT before the worker ends it itself.
_EXECUTION_MARGIN_S: Final = 60


@dataclass(frozen=True)
class LeaseTerms:
    """What a lease asks of the worker (seconds).

    Attributes:
        idle_seconds: the worker ends the lease after this long without a generation.
        startup_grace_seconds: the idle window before the first generation.
        max_lease_seconds: the lease ends at this age in any case.
    """

    idle_seconds: float = 300.0
    startup_grace_seconds: float = 600.0
    max_lease_seconds: float = 3600.0

    def __post_init__(self) -> None:
        values = (self.idle_seconds, self.startup_grace_seconds, self.max_lease_seconds)
        if not all(math.isfinite(v) and v > 0 for v in values):
            raise ValueError("lease times must be finite and > 0")

    def job_input(self) -> dict[str, Any]:
        """The ``input`` of the lease job."""
        return {
            "action": "lease",
            "idle_seconds": math.ceil(self.idle_seconds),
            "startup_grace_seconds": math.ceil(self.startup_grace_seconds),
            "max_lease_seconds": math.ceil(self.max_lease_seconds),
        }

    def policy(self, *, low_priority: bool = False) -> JobPolicy:
        """The job policy: RunPod's execution timeout above the longest possible lease.

        ``low_priority`` lease probes never make RunPod start a worker (runpod-api.md §4.2).
        """
        longest = math.ceil(self.max_lease_seconds) + _EXECUTION_MARGIN_S
        return JobPolicy(
            execution_timeout_ms=longest * 1000, low_priority=True if low_priority else None
        )


@dataclass
class V2Protocol:
    """Requests, waits for and releases v2 leases on one endpoint.

    Attributes:
        client: the RunPod client (carrying the key the lease is opened with).
        poll_interval: seconds between ``/stream`` polls (PollIntervalMs).
        terms: what each lease asks of its worker.
    """

    client: RunPodClient
    poll_interval: float
    terms: LeaseTerms = LeaseTerms()
    name: str = "v2"

    async def request_lease(
        self, *, terms: LeaseTerms | None = None, low_priority: bool = False
    ) -> Job:
        """Submit a lease job asking ``terms`` (default: :attr:`terms`); returns it as RunPod
        accepted it (IN_QUEUE)."""
        terms = terms or self.terms
        policy = terms.policy(low_priority=low_priority)
        return await self.client.run(terms.job_input(), policy=policy)

    async def poll_lease(
        self, job_id: str, *, wait_ms: int | None = None
    ) -> tuple[JobStatus, WorkerHandle | None]:
        """One ``/stream`` poll of a lease job: its status, and the lease once it was streamed.

        ``wait_ms`` long-polls: RunPod answers at the first output or the end of the job.

        Raises:
            ProtocolMismatchError: the endpoint's worker speaks v1 (it refused the action).
            WorkerProtocolError: the first output is not a usable v2 lease.
            JobFailedError: the job ended before it streamed a lease.
        """
        chunk = await self.client.stream(job_id, wait_ms=wait_ms)
        if chunk.outputs:
            return chunk.state, _handle_from(job_id, chunk.outputs[0])
        if chunk.state.is_terminal:
            raise _refusal(await self.client.status(job_id))
        return chunk.state, None

    async def wait_for_lease(self, job: Job, *, watch: LeaseWatcher | None = None) -> WorkerHandle:
        """Poll the lease job's stream until its first output; the caller bounds the wait.

        Raises as :meth:`poll_lease` does.
        """
        while True:
            state, handle = await self.poll_lease(job.id)
            if watch is not None:
                watch(state)
            if handle is not None:
                return handle
            await anyio.sleep(self.poll_interval)

    async def release(self, job_id: str) -> Job | None:
        """Cancel the lease job (withdraws a queued lease, stops a running worker).

        Returns the job as the cancel answered it (its ``delayTime`` and ``executionTime``
        once a worker had picked it up), or None when RunPod did not take the cancel. Errors
        are logged, never raised: release runs on every path and the lease ends by itself at
        the worker's idle or max time anyway.
        """
        try:
            return await self.client.cancel(job_id)
        except OrchestratorError as exc:
            log.warning(
                "[RunPodServerless] could not cancel lease %s: %s; its worker ends it when idle",
                job_id,
                exc,
            )
            return None


def _handle_from(job_id: str, output: Any) -> WorkerHandle:
    if not isinstance(output, Mapping):
        raise WorkerProtocolError(
            "The lease's first output is not an object; is this a SwarmUI worker image?",
            job_id=job_id,
            phase=Phase.POLLING,
        )
    if output.get("success") is not True:
        error = str(output.get("error") or "no reason given")
        if V1_REFUSAL in error:
            raise ProtocolMismatchError(detected="v1", job_id=job_id)
        raise JobFailedError(
            f"The worker refused the lease: {error}",
            job_status=JobStatus.IN_PROGRESS.value,
            error_text=error,
            job_id=job_id,
            phase=Phase.POLLING,
        )
    protocol = output.get("protocol")
    public_url = output.get("public_url")
    token = output.get("token")
    worker_id = output.get("worker_id")
    if (
        not isinstance(protocol, int)
        or protocol < 2
        or not isinstance(public_url, str)
        or not public_url
        or not isinstance(token, str)
        or not token
        or not isinstance(worker_id, str)
    ):
        raise WorkerProtocolError(
            "The lease lacks protocol >= 2, public_url, token or worker_id: the worker image is "
            "too old for leases (update it, or set WorkerProtocol = v1).",
            job_id=job_id,
            phase=Phase.POLLING,
        )
    session_id = output.get("session_id")
    receipt = WakeReceipt(
        worker_id=worker_id,
        public_url=public_url.rstrip("/"),
        session_id=session_id if isinstance(session_id, str) else None,
        delay_ms=None,
        execution_ms=None,
    )
    return WorkerHandle(
        receipt=receipt,
        protocol="v2",
        hold_job_id=job_id,
        authorization=Secret(f"Bearer {token}", ephemeral=True),
    )


def _refusal(job: Job) -> OrchestratorError:
    """Why a lease job ended without streaming a lease."""
    output = job.output if isinstance(job.output, Mapping) else {}
    texts = [str(output.get("error") or ""), job.error or ""]
    if any(V1_REFUSAL in text for text in texts):
        return ProtocolMismatchError(detected="v1", job_id=job.id, worker_id=job.worker_id)
    reason = next((t for t in texts if t), "no lease was streamed")
    return JobFailedError(
        f"The lease job ended {job.status} before it streamed a lease: {reason}",
        job_status=job.status,
        error_text=reason,
        job_id=job.id,
        worker_id=job.worker_id,
        phase=Phase.POLLING,
    )

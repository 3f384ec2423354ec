"""Emulated jobs: their state, and how a handler's result becomes a job result (spec §6.4)."""

from __future__ import annotations

import json
import socket
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any

from orchestrator.runpod import JobStatus

__all__ = ["EmulatedJob", "Outcome", "new_job_id", "outcome_of_exception", "outcome_of_value"]

_RUNPOD_SDK_VERSION = "1.12.0"


def new_job_id(*, sync: bool) -> str:
    """A fresh job id in RunPod's shape: ``<uuid>-u1``, or ``sync-<uuid>-u1`` for /runsync."""
    return f"{'sync-' if sync else ''}{uuid.uuid4()}-u1"


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


@dataclass(eq=False)
class EmulatedJob:
    """One submitted job as the emulated platform tracks it (times are loop time, in s).

    Attributes:
        id: the job id.
        input: the request's ``input`` as sent.
        policy: the request's ``policy`` object (empty when none was sent).
        webhook: the request's ``webhook`` URL, POSTed the status object on a terminal state.
        status: the RunPod status string.
        submitted_at: when the request arrived.
        started_at: when a worker took it.
        finished_at: when it reached a terminal status.
        worker_id: the worker that took it.
        output: the handler's output (shown once COMPLETED).
        error: the failure text (shown when FAILED).
        stream: every output streamed so far; ``/stream`` hands each out once.
        stream_cursor: how many of ``stream`` were handed out already.
        sync: whether it came from ``/runsync`` (shorter result retention).
        retries: how many times ``/retry`` requeued it.
        progress: the last progress update while IN_PROGRESS (shown as ``output``).
        key_fingerprint: which API key submitted it (``Secret.fingerprint`` form), so tests
            can tell whose key a job was paid with; never the key itself.
    """

    id: str
    input: Any = field(repr=False)
    policy: dict[str, Any]
    webhook: str | None
    submitted_at: float
    status: str = JobStatus.IN_QUEUE.value
    started_at: float | None = None
    finished_at: float | None = None
    worker_id: str | None = None
    output: Any = field(default=None, repr=False)
    error: str | None = None
    stream: list[Any] = field(default_factory=list, repr=False)
    stream_cursor: int = 0
    sync: bool = False
    key_fingerprint: str | None = None
    retries: int = 0
    progress: Any = field(default=None, repr=False)

    @property
    def state(self) -> JobStatus:
        """The typed status."""
        return JobStatus(self.status)

    @property
    def low_priority(self) -> bool:
        """Whether ``policy.lowPriority`` is set (such a job never starts a worker)."""
        return self.policy.get("lowPriority") is True

    def execution_timeout_s(self, default_s: float) -> float:
        """This job's execution timeout: ``policy.executionTimeout`` (ms) or ``default_s``."""
        timeout_ms = self.policy.get("executionTimeout")
        return timeout_ms / 1000 if isinstance(timeout_ms, int | float) else default_s

    def ttl_s(self) -> float | None:
        """``policy.ttl`` in seconds, None when the request set none."""
        ttl_ms = self.policy.get("ttl")
        if isinstance(ttl_ms, int | float) and not isinstance(ttl_ms, bool):
            return ttl_ms / 1000
        return None

    def to_api(self, now: float) -> dict[str, Any]:
        """The job object ``/status`` returns (fields appear as the state allows, spec §2.4)."""
        body: dict[str, Any] = {"id": self.id, "status": self.status}
        if self.started_at is not None:
            body["delayTime"] = _ms(self.started_at - self.submitted_at)
            end = self.finished_at if self.finished_at is not None else now
            body["executionTime"] = _ms(end - self.started_at)
            body["workerId"] = self.worker_id
        if self.status == JobStatus.COMPLETED:
            body["output"] = self.output
        elif self.status == JobStatus.IN_PROGRESS and self.progress is not None:
            body["output"] = self.progress
        if self.status == JobStatus.FAILED and self.error is not None:
            body["error"] = self.error
        if self.retries:
            body["retries"] = self.retries
        return body

    def take_stream(self) -> list[Any]:
        """The outputs streamed since the previous call (a cursor, never a replay)."""
        fresh = self.stream[self.stream_cursor :]
        self.stream_cursor = len(self.stream)
        return fresh


@dataclass(frozen=True)
class Outcome:
    """A finished handler run: COMPLETED with ``output`` or FAILED with ``error``."""

    status: JobStatus
    output: Any = None
    error: str | None = None


def outcome_of_value(value: Any) -> Outcome:
    """Map a handler's return value: a dict with ``error`` fails the job, else it is output."""
    if isinstance(value, dict) and "error" in value:
        error = value["error"]
        rest = {k: v for k, v in value.items() if k != "error"}
        text = error if isinstance(error, str) else json.dumps(error)
        return Outcome(JobStatus.FAILED, output=rest or None, error=text)
    return Outcome(JobStatus.COMPLETED, output=value)


def outcome_of_exception(exc: Exception, *, worker_id: str) -> Outcome:
    """Map an uncaught handler exception: FAILED with the SDK's JSON error string."""
    error = {
        "error_type": str(type(exc)),
        "error_message": str(exc),
        "error_traceback": "".join(traceback.format_exception(exc)),
        "hostname": socket.gethostname(),
        "worker_id": worker_id,
        "runpod_version": _RUNPOD_SDK_VERSION,
    }
    return Outcome(JobStatus.FAILED, error=json.dumps(error))

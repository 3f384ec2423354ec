"""The RunPod serverless API's objects as msgspec structs (runpod-api.md §2)."""

from __future__ import annotations

import enum
import logging
from typing import Any

import msgspec

__all__ = [
    "Health",
    "HealthJobs",
    "HealthWorkers",
    "Job",
    "JobPolicy",
    "JobStatus",
    "PurgeResult",
    "StreamChunk",
    "decode_stream",
]

_log = logging.getLogger("swarmpod.runpod")
_unknown_statuses_seen: set[str] = set()


class JobStatus(enum.StrEnum):
    """A RunPod job status. ``RUNNING`` is documented but treated like ``IN_PROGRESS``."""

    IN_QUEUE = "IN_QUEUE"
    IN_PROGRESS = "IN_PROGRESS"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"

    @property
    def is_terminal(self) -> bool:
        """Whether the job will not change any more (COMPLETED/FAILED/CANCELLED/TIMED_OUT)."""
        return self in _TERMINAL


_TERMINAL = frozenset(
    {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.TIMED_OUT}
)


def _status_of(raw: str) -> JobStatus:
    try:
        return JobStatus(raw)
    except ValueError:
        if raw not in _unknown_statuses_seen:
            _unknown_statuses_seen.add(raw)
            _log.warning(
                "[RunPodApiClient] unknown job status %r; treating it as IN_PROGRESS", raw[:40]
            )
        return JobStatus.IN_PROGRESS


class Job(msgspec.Struct, frozen=True, rename="camel"):
    """A job as ``/run``, ``/runsync``, ``/status`` and ``/cancel`` return it.

    ``status`` keeps the raw string; :attr:`state` is the typed view.
    ``delay_time`` (queue + cold start) and ``execution_time`` are in ms.
    """

    id: str
    status: str
    delay_time: int | None = None
    execution_time: int | None = None
    output: Any = None
    error: str | None = None
    worker_id: str | None = None

    @property
    def state(self) -> JobStatus:
        """The typed status; an unknown status string maps to IN_PROGRESS (logged once)."""
        return _status_of(self.status)


class JobPolicy(msgspec.Struct, frozen=True, omit_defaults=True):
    """Per-job policy sent with ``/run`` and ``/runsync`` (all times in ms).

    >>> msgspec.json.encode(JobPolicy(execution_timeout_ms=700_000, low_priority=True))
    b'{"executionTimeout":700000,"lowPriority":true}'
    """

    execution_timeout_ms: int | None = msgspec.field(default=None, name="executionTimeout")
    low_priority: bool | None = msgspec.field(default=None, name="lowPriority")
    ttl_ms: int | None = msgspec.field(default=None, name="ttl")


class StreamChunk(msgspec.Struct, frozen=True):
    """What one ``/stream`` call returned: the job status and the outputs new since the last call.

    A bare JSON list (the vLLM docs' form) carries no status; it is reported as IN_PROGRESS,
    so a caller learns about the end of the job from ``/status``.
    """

    status: str
    outputs: list[Any]

    @property
    def state(self) -> JobStatus:
        """The typed status (unknown strings map to IN_PROGRESS)."""
        return _status_of(self.status)


class _StreamItem(msgspec.Struct):
    output: Any = None


class _StreamBody(msgspec.Struct):
    status: str
    stream: list[_StreamItem] = msgspec.field(default_factory=list)


def decode_stream(raw: bytes) -> StreamChunk:
    """Decode a ``/stream`` body, either ``{"status", "stream": [...]}`` or a bare list."""
    body = msgspec.json.decode(raw, type=_StreamBody | list[_StreamItem])
    if isinstance(body, list):
        return StreamChunk(status=JobStatus.IN_PROGRESS.value, outputs=[i.output for i in body])
    return StreamChunk(status=body.status, outputs=[i.output for i in body.stream])


class HealthJobs(msgspec.Struct, frozen=True, rename="camel"):
    """Job counters of ``/health``; missing keys are 0."""

    completed: int = 0
    failed: int = 0
    in_progress: int = 0
    in_queue: int = 0
    retried: int = 0


class HealthWorkers(msgspec.Struct, frozen=True):
    """Worker counters of ``/health``; missing keys are 0."""

    idle: int = 0
    initializing: int = 0
    ready: int = 0
    running: int = 0
    throttled: int = 0
    unhealthy: int = 0


class Health(msgspec.Struct, frozen=True):
    """The ``/health`` answer: queue and worker counters of an endpoint."""

    jobs: HealthJobs = msgspec.field(default_factory=HealthJobs)
    workers: HealthWorkers = msgspec.field(default_factory=HealthWorkers)


class PurgeResult(msgspec.Struct, frozen=True):
    """The ``/purge-queue`` answer: how many queued jobs were removed."""

    removed: int
    status: str

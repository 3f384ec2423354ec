"""Progress events: what a generation is doing right now, in words a user understands."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ProgressCallback", "ProgressEvent", "Stage"]


class Stage(enum.StrEnum):
    """The user-visible stage of a generation (coarser than the chart's states)."""

    QUEUED = "queued"  # waiting behind MaxConcurrent
    BOOTING = "booting"  # a worker is being woken / is starting
    READY = "ready"  # the worker's SwarmUI answers
    GENERATING = "generating"
    RELEASING = "releasing"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class ProgressEvent:
    """One progress report.

    Attributes:
        stage: the coarse stage.
        message: one line for humans ("wake-up job IN_QUEUE: waiting for a worker").
        elapsed: seconds since the generation was submitted (loop clock).
        percent: overall generation progress in [0, 1] while generating, else None.
        detail: machine-readable facts (job status, worker id, queue position...).
    """

    stage: Stage
    message: str
    elapsed: float
    percent: float | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


ProgressCallback = Callable[[ProgressEvent], None]

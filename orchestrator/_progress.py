"""Progress events: what a generation is doing right now, in words a user understands."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ._events import GenerationObserver, Stage

__all__ = ["ProgressCallback", "ProgressEvent", "ProgressReporter"]

log = logging.getLogger("swarmpod.engine")


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


class _Timed(Protocol):
    """What a progress event reads of the run: the seconds since it was submitted."""

    @property
    def elapsed(self) -> float: ...


class ProgressReporter(GenerationObserver[_Timed]):
    """Turns a generation's domain events into the caller's :class:`ProgressEvent` calls.

    A callback that raises is logged and ignored: it never stops the generation.
    """

    def __init__(self, callback: ProgressCallback) -> None:
        self._callback = callback

    def reported(
        self,
        run: _Timed,
        stage: Stage,
        message: str,
        percent: float | None,
        detail: Mapping[str, Any],
    ) -> None:
        """One progress event."""
        self._send(run, stage, message, percent, {k: v for k, v in detail.items() if v is not None})

    def stepped(self, run: _Timed, percent: float, image: int, images_done: int) -> None:
        """``generating n%`` with the image and the images done."""
        detail = {"batch_index": image, "done": images_done}
        self._send(run, Stage.GENERATING, f"generating {percent:.0%}", percent, detail)

    def _send(
        self,
        run: _Timed,
        stage: Stage,
        message: str,
        percent: float | None,
        detail: Mapping[str, Any],
    ) -> None:
        event = ProgressEvent(
            stage=stage,
            message=message,
            elapsed=run.elapsed,
            percent=percent,
            detail=detail,
        )
        try:
            self._callback(event)
        except Exception:
            log.exception("[RunPodServerless] a progress callback raised; ignored")

"""What a generation tells whoever observes it: the engine's domain events, no telemetry here.

The engine (:class:`~orchestrator.engine.GenerationRun`) attaches each observer to the
generation's chart (every state entered and left) and tells it the facts the chart does not
hold. Observers turn them into what they are for: the caller's progress events
(:class:`~orchestrator._progress.ProgressReporter`), or spans, metrics and the generation's cost
(:class:`observability.GenerationTrace`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from .workers import Seat

__all__ = ["GenerationObserver", "Stage"]

RunT_contra = TypeVar("RunT_contra", contravariant=True)


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


class GenerationObserver(Protocol[RunT_contra]):
    """Hears one generation: its chart's states (as a chart listener) and these facts.

    ``RunT_contra`` is what the observer reads of the run (the engine's ``GenerationRun``
    gives all of it; an observer may ask for less, e.g. only ``elapsed``)."""

    def on_enter_state(self, state: Any, event: Any) -> None:
        """The generation's chart entered ``state`` (its phase begins) on ``event``."""
        return None

    def on_exit_state(self, state: Any) -> None:
        """The generation's chart left ``state`` (its phase ends)."""
        return None

    def reported(
        self,
        run: RunT_contra,
        stage: Stage,
        message: str,
        percent: float | None,
        detail: Mapping[str, Any],
    ) -> None:
        """Where the generation stands, in words: queued, why it waits for a worker, ready,
        forwarded, an image done, the model loading, releasing, its outcome."""
        return None

    def stepped(self, run: RunT_contra, percent: float, image: int, images_done: int) -> None:
        """One sampling step of image ``image`` done; ``percent`` of the whole generation."""
        return None

    def worker_taken(self, run: RunT_contra, seat: Seat) -> None:
        """The generation got its seat on a worker (warm, or after its cold start)."""
        return None

    def finished(self, run: RunT_contra) -> None:
        """The generation reached its final state (Done, Failed or Cancelled)."""
        return None

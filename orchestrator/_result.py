"""What a generation returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from observability import GenerationCost

from .swarmui import GeneratedImage

if TYPE_CHECKING:
    from .engine import GenerationRun

__all__ = ["GenerationResult", "PhaseTimings", "result_of"]


@dataclass(frozen=True)
class PhaseTimings:
    """Seconds spent in each phase of one generation (loop clock).

    Attributes:
        queued: waiting behind MaxConcurrent.
        waking: submitting the wake-up (chart state Waking).
        polling: waiting for the worker to come up (Polling).
        ready: checking the worker's SwarmUI before generating (Ready).
        generating: the SwarmUI generation (Generating).
        releasing: giving the worker back (ShuttingDown).
        total: from submission to the final state.
    """

    queued: float
    waking: float
    polling: float
    ready: float
    generating: float
    releasing: float
    total: float

    @property
    def startup(self) -> float:
        """Seconds from the wake-up until the worker was ready to generate."""
        return self.waking + self.polling + self.ready


@dataclass(frozen=True)
class GenerationResult:
    """The images of one generation and the facts of how they were made.

    Attributes:
        images: the decoded images, in batch order, each with its seed.
        cold_start: True when a worker had to be woken for this generation.
        timings: seconds per phase.
        path: the chart states visited, e.g. ``("Idle", "Waking", ..., "Done")``.
        worker_id: the RunPod worker that generated.
        job_ids: the RunPod jobs this generation submitted (wake-up, keepalive, ...).
        runpod_delay_ms: the wake-up job's ``delayTime`` (queue + cold start) as RunPod reports
            it; None for a warm worker.
        gpu_seconds: the seconds it kept a worker (on it, plus the boot it waited for).
        cost: its GPU-seconds split into boot / execution / idle tail and ``cost_usd``; the
            idle tail is filled in (``cost.final``) once its worker is released.
        generation_id: the generation's id (``swarmpod.generation.id`` on its spans).
    """

    images: tuple[GeneratedImage, ...]
    cold_start: bool
    timings: PhaseTimings
    path: tuple[str, ...]
    worker_id: str | None
    job_ids: tuple[str, ...]
    runpod_delay_ms: int | None
    gpu_seconds: float = 0.0
    cost: GenerationCost | None = None
    generation_id: str = ""

    @property
    def seeds(self) -> list[int | None]:
        """The seed of each image, in order."""
        return [image.seed for image in self.images]


def result_of(run: GenerationRun, cost: GenerationCost | None) -> GenerationResult:
    """The result of a generation that reached Done: its images, timings, path and cost."""
    seconds = run.recorder.seconds_in
    seat = run.seat
    cold = seat is not None and seat.cold
    admitted = run.admitted_at if run.admitted_at is not None else run.submitted_at
    return GenerationResult(
        images=tuple(run.images),
        cold_start=cold,
        timings=PhaseTimings(
            queued=admitted - run.submitted_at,
            waking=seconds("Waking"),
            polling=seconds("Polling"),
            ready=seconds("Ready"),
            generating=seconds("Generating"),
            releasing=seconds("ShuttingDown"),
            total=run.elapsed,
        ),
        path=tuple(run.recorder.path),
        worker_id=seat.handle.worker_id if seat is not None else None,
        job_ids=seat.job_ids if seat is not None else (),
        runpod_delay_ms=seat.delay_ms if seat is not None and cold else None,
        gpu_seconds=run.gpu_seconds,
        cost=cost,
        generation_id=run.generation_id,
    )

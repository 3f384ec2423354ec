"""The engine: drives one generation's chart with anyio tasks, and only that.

Transitions first, I/O second: every step awaits its I/O, then ``send()``s the outcome into the
:class:`~statecharts.GenerationChart`. Each generation runs in its own task group: the phases,
and beside them a watcher of the worker it holds (a worker that ends underneath the generation
ends it at once). Deadlines are cancel scopes that send ``timeout`` (StartupTimeoutSec covers
Waking, Polling and Ready; GenerationTimeoutSec covers Generating). ShuttingDown gives the
worker back, shielded, on every path — success, error, timeout, cancellation — so no worker is
left billing.

What happens is told to the run's observers (:class:`~orchestrator._events.GenerationObserver`):
progress for the caller, spans, metrics and cost for observability. The engine knows nothing of
them beyond that seam.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import anyio
from statemachine import State

from statecharts import GenerationChart, GenerationStates, Outcome, PathRecorder

from ._events import GenerationObserver, Stage
from .errors import (
    GenerationTimeoutError,
    NoCapacityError,
    OrchestratorError,
    Phase,
    TransportError,
    WorkerCrashLoopError,
    WorkerNotReadyError,
)
from .runpod import Job
from .settings import Timeouts
from .swarmui import (
    GeneratedImage,
    GenerationEvent,
    ImageReady,
    Progress,
    RequestSent,
    StatusUpdate,
    clean_param_id,
)
from .workers import Admission, Seat, Station, Waiting, WaitReason, WorkerSession

__all__ = ["GenerationPlan", "GenerationRequest", "GenerationRun", "expected_image_size"]

log = logging.getLogger("swarmpod.engine")

_PHASE_OF_STATE: dict[State, Phase] = {
    GenerationStates.idle: Phase.ADMISSION,
    GenerationStates.waking: Phase.WAKING,
    GenerationStates.polling: Phase.POLLING,
    GenerationStates.ready: Phase.READY,
    GenerationStates.generating: Phase.GENERATING,
    GenerationStates.shutting_down: Phase.RELEASING,
}
_FINAL_STAGE = {
    Outcome.SUCCEEDED: Stage.DONE,
    Outcome.FAILED: Stage.FAILED,
    Outcome.CANCELLED: Stage.CANCELLED,
}
# SwarmUI derives the image size from these instead of width/height when they are set.
_SIZE_OVERRIDES = {"rawresolution", "sidelength", "refinerupscale", "aspectratio"}


@dataclass(frozen=True)
class GenerationRequest:
    """One generation asked for: SwarmUI text-to-image parameters, image count, and who asks.

    Attributes:
        params: T2I parameters by SwarmUI ID (``prompt``, ``model``, ``width``...), passed through.
        images: how many images to generate.
        user: the calling user (for keys and attribution), if any.
    """

    params: Mapping[str, Any]
    images: int = 1
    user: str | None = None


@dataclass(frozen=True)
class GenerationPlan:
    """Everything one generation needs to run: what to make, where workers come from, limits.

    Attributes:
        request: what to generate.
        connect: returns the worker station (resolving the caller's RunPod key; raises
            MissingApiKeyError when there is none).
        http: the HTTP session for the worker's SwarmUI.
        admission: the MaxConcurrent limit shared by the orchestrator.
        timeouts: the deadlines.
        poll_interval: seconds between readiness checks.
        transport: ``"ws"`` (progress) or ``"http"`` for the SwarmUI generation.
        endpoint_id: the endpoint (for observers).
    """

    request: GenerationRequest
    connect: Callable[[], Awaitable[Station]]
    http: aiohttp.ClientSession
    admission: Admission
    timeouts: Timeouts
    poll_interval: float
    transport: Literal["ws", "http"] = "ws"
    endpoint_id: str = ""


def expected_image_size(params: Mapping[str, Any]) -> tuple[int, int] | None:
    """The (width, height) the images must have, when the parameters fix it plainly.

    >>> expected_image_size({"width": 640, "height": 384})
    (640, 384)
    >>> expected_image_size({"width": 640, "height": 384, "sidelength": 1024}) is None
    True
    """
    cleaned = {clean_param_id(key): value for key, value in params.items()}
    if _SIZE_OVERRIDES & cleaned.keys():
        return None
    width, height = cleaned.get("width"), cleaned.get("height")
    if isinstance(width, int) and isinstance(height, int) and not isinstance(width, bool):
        return (width, height)
    return None


class GenerationRun:
    """One generation, from admission to release; ``await run()`` once.

    Args:
        plan: what to generate and with what.
        observers: told everything that happens (they are the chart's listeners too).
        clock: the loop clock (``anyio.current_time``); injectable for tests.

    Attributes:
        clock: the loop clock it reads.
        chart: the generation's chart (its state, outcome and failure).
        recorder: the states visited, with their loop times.
        seat: the worker seat it holds or held, once it got one.
        images: the images made.
        wake_job: the RunPod job its worker was asked with, when it waited for one.
        generation_id: its id.
        submitted_at: when it was asked for (loop time).
        admitted_at: when it passed MaxConcurrent, if it did.
    """

    def __init__(
        self,
        plan: GenerationPlan,
        *,
        observers: Sequence[GenerationObserver[GenerationRun]] = (),
        clock: Callable[[], float] = anyio.current_time,
    ) -> None:
        self.plan = plan
        self.request = plan.request
        self.clock = clock
        self._observers: tuple[GenerationObserver[GenerationRun], ...] = tuple(observers)
        self.recorder = PathRecorder(clock)
        self.chart = GenerationChart(listeners=[self.recorder, *self._observers])
        self.generation_id = uuid.uuid4().hex[:16]
        model = plan.request.params.get("model")
        self.model: str | None = str(model) if model is not None else None
        self.submitted_at = clock()
        self.admitted_at: float | None = None
        self.seat: Seat | None = None
        self.images: list[GeneratedImage] = []
        self.wake_job: Job | None = None
        self._use: WorkerSession | None = None
        self._seated = anyio.Event()
        self._waiting_for: WaitReason | None = None
        self._worker_gone: OrchestratorError | None = None

    def observe(self, *observers: GenerationObserver[GenerationRun]) -> None:
        """Tell ``observers`` too what happens from now on (before :meth:`run`)."""
        for observer in observers:
            self.chart.add_listener(observer)
        self._observers += observers

    # --- what observers and callers read -----------------------------------------------------

    @property
    def elapsed(self) -> float:
        """Seconds since it was asked for."""
        return self.clock() - self.submitted_at

    @property
    def cold_start(self) -> bool:
        """Whether this generation waited for a worker to boot."""
        return self.seat is not None and self.seat.cold

    @property
    def gpu_seconds(self) -> float:
        """GPU-seconds this generation kept a worker: its time on the worker (Ready,
        Generating), plus the boot it waited for (Waking, Polling) when it was a cold start."""
        seconds = self.recorder.seconds_in
        used = seconds("Ready") + seconds("Generating")
        if self.cold_start:
            used += seconds("Waking") + seconds("Polling")
        return used

    @property
    def failure(self) -> BaseException | None:
        """Why it failed (the chart's failure), if it did."""
        return self.chart.failure

    def phase(self) -> Phase:
        """The phase it is in (or failed in)."""
        return _PHASE_OF_STATE.get(self.chart.state, Phase.RELEASING)

    # --- driving ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Drive the chart to a final state; raise the failure, with the chart path on it."""
        try:
            await self._run()
        finally:
            self._report_final()
            for observer in self._observers:
                observer.finished(self)
        failure = self.chart.failure
        if isinstance(failure, OrchestratorError):
            final = failure.in_context(path=tuple(self.recorder.path))
            if final is failure:
                raise failure
            raise final from failure

    async def _run(self) -> None:
        admission = self.plan.admission
        try:
            station = await self.plan.connect()
            self._use = WorkerSession(
                station,
                http=self.plan.http,
                request_timeout=self.plan.timeouts.request,
                release_timeout=self.plan.timeouts.release,
                poll_interval=self.plan.poll_interval,
            )
            if admission.in_flight >= admission.limit:
                self._report(
                    Stage.QUEUED,
                    "queued behind MaxConcurrent: waiting for a generation slot",
                    waiting=WaitReason.MAX_CONCURRENT.value,
                )
            async with admission.slot():
                self.admitted_at = self.clock()
                await self._attempt()
        except OrchestratorError as exc:  # refused before admission (no key...)
            self._fail(exc)
            await self._shut_down()
        except anyio.get_cancelled_exc_class():  # cancelled while queued
            self._cancel()
            await self._shut_down()
            raise

    async def _attempt(self) -> None:
        """The admitted part, in its own task group: the phases, and beside them a watcher of
        the worker; ShuttingDown on every path, inside the slot."""
        failure: BaseException | None = None
        unexpected = False
        try:
            async with anyio.create_task_group() as group:
                phases = anyio.CancelScope()
                group.start_soon(self._watch_worker, phases)
                with phases:
                    try:
                        await self._drive()
                    except OrchestratorError as exc:
                        failure = exc
                    except Exception as exc:
                        log.exception("[RunPodServerless] unexpected error in the engine")
                        failure, unexpected = exc, True
                group.cancel_scope.cancel()
        except anyio.get_cancelled_exc_class():
            self._cancel()
            await self._shut_down()
            raise
        if phases.cancelled_caught and self._worker_gone is not None:
            failure = self._worker_gone
        if failure is not None:
            self._fail(failure)
        await self._shut_down()
        if unexpected and failure is not None:
            raise failure

    async def _watch_worker(self, phases: anyio.CancelScope) -> None:
        """Beside the phases: a worker that ends while the generation holds it ends the phase
        at once, as a transport failure (its lease was cancelled, it died)."""
        await self._seated.wait()
        seat = self.seat
        if seat is None or seat.ended is None:
            return
        await seat.ended.wait()
        if self.chart.on_worker:
            self._worker_gone = TransportError(
                "The worker went away during the generation (its RunPod job ended); it was "
                "not retried. Try again: another worker is used.",
                phase=self.phase(),
                worker_id=seat.handle.worker_id,
            )
            phases.cancel()

    async def _drive(self) -> None:
        use = self._worker_use
        timeouts = self.plan.timeouts
        with anyio.move_on_after(timeouts.startup) as startup:
            if use.take_warm():
                assert use.seat is not None
                self._take(use.seat)
                self.chart.send("reuse_warm")
            else:
                self.chart.send("wake")
                self._report(Stage.BOOTING, "waiting for a worker", waiting="requesting")
                self._take(await use.acquire(self._on_waiting))
                if self.chart.allows("accepted"):  # no report said RunPod took the request
                    self.chart.send("accepted")
                self.chart.send("worker_ready")
            await self._check_ready()
        if startup.cancelled_caught:
            raise self._not_ready(timeouts.startup)
        await self._generate()
        self.chart.send("release")

    def _not_ready(self, timeout_s: float) -> WorkerNotReadyError:
        """Why no worker was ready in time, as precisely as RunPod said."""
        job = self.wake_job
        facts: dict[str, Any] = {
            "last_status": job.status if job else None,
            "phase": self.phase(),
            "job_id": job.id if job else None,
        }
        if self._waiting_for is WaitReason.THROTTLED:
            return NoCapacityError(timeout_s, **facts)
        if self._waiting_for is WaitReason.UNHEALTHY:
            return WorkerCrashLoopError(timeout_s, **facts)
        return WorkerNotReadyError(timeout_s, **facts)

    def _take(self, seat: Seat) -> None:
        self.seat = seat
        self._seated.set()
        for observer in self._observers:
            observer.worker_taken(self, seat)

    def _on_waiting(self, waiting: Waiting) -> None:
        """A report from the station on why the generation still waits for a worker."""
        if not self.chart.waiting_for_worker:
            return
        self._waiting_for = waiting.reason
        if waiting.job is not None:
            self.wake_job = waiting.job
            if self.chart.allows("accepted"):
                self.chart.send("accepted")
        self._report(
            Stage.BOOTING,
            waiting.message,
            waiting=waiting.reason.value,
            job_status=waiting.job.status if waiting.job else None,
            job_id=waiting.job.id if waiting.job else None,
        )

    async def _check_ready(self) -> None:
        """Make sure the worker's SwarmUI has a session and no backend is still loading."""
        assert self.seat is not None
        await self._worker_use.ready(
            on_loading=lambda: self._report(
                Stage.BOOTING,
                "the worker's SwarmUI is loading its backend",
                waiting=WaitReason.MODEL_LOADING.value,
            ),
        )
        self._report(
            Stage.READY,
            f"worker {self.seat.handle.worker_id} is ready",
            worker_id=self.seat.handle.worker_id,
            cold_start=self.seat.cold,
        )

    async def _generate(self) -> None:
        self.chart.send("generate")
        swarm = self._worker_use.swarm()
        self._report(Stage.GENERATING, "generating", percent=0.0)
        timeout = self.plan.timeouts.generation
        with anyio.move_on_after(timeout) as deadline:
            try:
                self.images = await swarm.generate(
                    self.request.params,
                    images=self.request.images,
                    transport=self.plan.transport,
                    on_event=self._on_swarm_event,
                    expected_size=expected_image_size(self.request.params),
                )
            except OrchestratorError as exc:
                self._worker_use.failed(exc)
                raise
        if deadline.cancelled_caught:
            raise GenerationTimeoutError(timeout, phase=Phase.GENERATING)

    async def _shut_down(self) -> None:
        """ShuttingDown: release the worker, shielded and bounded, then reach a final state."""
        if not self.chart.shutting_down:
            return
        if self.seat is not None:
            self._report(Stage.RELEASING, "giving the worker back")
        elif "Waking" in self.recorder.path:
            self._report(Stage.RELEASING, "withdrawing the request for a worker")
        if self._use is not None and not await self._use.give_back():
            handle = self.seat.handle if self.seat else None
            log.warning(
                "[RunPodServerless] releasing worker %s took over %g s; its job %s ends at its "
                "execution timeout at the latest",
                handle.worker_id if handle else "?",
                self.plan.timeouts.release,
                handle.hold_job_id if handle else "?",
            )
        self.chart.send("released")

    # --- helpers ------------------------------------------------------------------------

    @property
    def _worker_use(self) -> WorkerSession:
        assert self._use is not None, "connect() runs before any phase"
        return self._use

    def _cancel(self) -> None:
        if self.chart.allows("cancel"):
            self.chart.send("cancel")

    def _fail(self, exc: BaseException) -> None:
        if not self.chart.allows("error"):
            return
        if isinstance(exc, OrchestratorError):
            known = exc.in_context(
                phase=self.phase(),
                worker_id=self.seat.handle.worker_id if self.seat else None,
                job_id=self.wake_job.id if self.wake_job else None,
            )
            if known is not exc:
                known.__cause__ = exc
            exc = known
        event = (
            "timeout" if isinstance(exc, WorkerNotReadyError | GenerationTimeoutError) else "error"
        )
        log.warning("[RunPodServerless] generation failed in %s: %s", self.phase(), exc)
        self.chart.send(event, failure=exc)

    def _on_swarm_event(self, event: GenerationEvent) -> None:
        if isinstance(event, Progress):  # the hot path: one per sampling step
            done = len(self.images)
            for observer in self._observers:
                observer.stepped(self, event.overall, event.batch_index, done)
        elif isinstance(event, StatusUpdate) and event.loading_models:
            self._report(Stage.GENERATING, "the worker is loading the model", percent=None)
        elif isinstance(event, RequestSent):
            self._report(
                Stage.GENERATING,
                "forwarded to the worker's SwarmUI",
                percent=0.0,
                forwarded=event.transport,
            )
        elif isinstance(event, ImageReady):
            self._report(
                Stage.GENERATING,
                f"image {event.batch_index + 1} of {self.request.images} ready",
                batch_index=event.batch_index,
            )

    def _report(
        self, stage: Stage, message: str, *, percent: float | None = None, **detail: Any
    ) -> None:
        for observer in self._observers:
            observer.reported(self, stage, message, percent, detail)

    def _report_final(self) -> None:
        outcome = self.chart.outcome
        if outcome is None or not self.chart.is_terminated:
            return
        message = {
            Outcome.SUCCEEDED: f"{len(self.images)} image(s) done",
            Outcome.FAILED: f"failed: {self.chart.failure}",
            Outcome.CANCELLED: "cancelled; the worker was released",
        }[outcome]
        self._report(_FINAL_STAGE[outcome], message)

"""The engine: drives one generation's chart with anyio tasks.

Transitions first, I/O second: every step awaits its I/O, then ``send()``s the outcome into the
:class:`~statecharts.GenerationChart`. Deadlines are anyio cancel scopes (StartupTimeoutSec
covers Waking, Polling and Ready; GenerationTimeoutSec covers Generating). ShuttingDown runs
in a shielded scope on every path — success, error, timeout, cancellation — so no worker is
left billing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import anyio

from statecharts import GenerationChart, Outcome, PathRecorder

from ._progress import ProgressCallback, ProgressEvent, Stage
from ._result import GenerationResult, PhaseTimings
from .errors import (
    GenerationTimeoutError,
    OrchestratorError,
    Phase,
    TransportError,
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
    SwarmUIClient,
    clean_param_id,
)
from .workers import (
    Admission,
    Seat,
    Station,
    Waiting,
    WaitReason,
    WorkerHandle,
    wait_until_swarm_ready,
)

__all__ = ["ChartStock", "GenerationRequest", "GenerationRun", "expected_image_size"]

log = logging.getLogger("swarmpod.engine")

_PHASE_OF_STATE: dict[str, Phase] = {
    "idle": Phase.ADMISSION,
    "waking": Phase.WAKING,
    "polling": Phase.POLLING,
    "ready": Phase.READY,
    "generating": Phase.GENERATING,
    "shutting_down": Phase.RELEASING,
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


class ChartStock:
    """Generation charts built ahead, so building one is not on a request's path.

    A python-statemachine chart with its recorder takes about a millisecond to build, more than
    the rest of forwarding a warm generation; the orchestrator takes a ready one per
    generation and builds the next when a generation ends.

    >>> stock = ChartStock(lambda: 0.0)
    >>> chart, recorder = stock.take()
    >>> chart.state_id, recorder.path
    ('idle', ['Idle'])
    """

    def __init__(self, clock: Callable[[], float] = anyio.current_time) -> None:
        self._clock = clock
        self._ready: list[tuple[GenerationChart, PathRecorder]] = []

    def take(self) -> tuple[GenerationChart, PathRecorder]:
        """A fresh chart (state Idle, entered now) with its path recorder."""
        if not self._ready:
            return self._build()
        chart, recorder = self._ready.pop()
        for visit in recorder.visits:  # Idle, entered when built: it starts now
            visit.entered_at = self._clock()
        return chart, recorder

    def refill(self) -> None:
        """Build one chart ahead if none is ready."""
        if not self._ready:
            self._ready.append(self._build())

    def _build(self) -> tuple[GenerationChart, PathRecorder]:
        recorder = PathRecorder(self._clock)
        return GenerationChart(listeners=[recorder]), recorder


class GenerationRun:
    """One generation, from admission to release; ``await run()`` once.

    Args:
        request: what to generate.
        connect: returns the worker station for this run (resolving the caller's RunPod key;
            raises MissingApiKeyError when there is none): a v2 lease pool, the shared v1
            worker, or the ``auto`` station that tries leases first.
        session: the shared HTTP session for the worker's SwarmUI.
        admission: the MaxConcurrent limit shared by the orchestrator.
        timeouts: the deadlines.
        poll_interval: seconds between readiness polls.
        transport: ``"ws"`` (progress) or ``"http"`` for the SwarmUI generation.
        on_progress: called with each :class:`ProgressEvent`.
        clock: the loop clock (``anyio.current_time``); injectable for tests.
        charts: where the chart comes from (built ahead); a new one is built if None.
    """

    def __init__(
        self,
        request: GenerationRequest,
        *,
        connect: Callable[[], Awaitable[Station]],
        session: aiohttp.ClientSession,
        admission: Admission,
        timeouts: Timeouts,
        poll_interval: float,
        transport: str = "ws",
        on_progress: ProgressCallback | None = None,
        clock: Callable[[], float] = anyio.current_time,
        charts: ChartStock | None = None,
    ) -> None:
        self.request = request
        self._connect = connect
        self._station_or_none: Station | None = None
        self._seat: Seat | None = None
        self._given_back = False
        self._broken = False
        self._session = session
        self._admission = admission
        self._timeouts = timeouts
        self._poll_interval = poll_interval
        self._transport = "http" if transport == "http" else "ws"
        self._on_progress = on_progress
        self._clock = clock
        self.chart, self.recorder = (charts or ChartStock(clock)).take()
        self._submitted_at = clock()
        self._admitted_at: float | None = None
        self._wake_job: Job | None = None
        self._handle: WorkerHandle | None = None
        self._images: list[GeneratedImage] = []
        self._swarm_client: SwarmUIClient | None = None

    # --- public -------------------------------------------------------------------------

    @property
    def cold_start(self) -> bool:
        """Whether this generation waited for a worker to boot."""
        return self._seat is not None and self._seat.cold

    @property
    def gpu_seconds(self) -> float:
        """GPU-seconds this generation kept a worker: its time on the worker (Ready,
        Generating), plus the boot it waited for (Waking, Polling) when it was a cold start."""
        seconds = self.recorder.seconds_in
        used = seconds("Ready") + seconds("Generating")
        if self.cold_start:
            used += seconds("Waking") + seconds("Polling")
        return used

    async def run(self) -> GenerationResult:
        """Drive the chart to a final state; return the result or raise the failure."""
        try:
            try:
                self._station_or_none = await self._connect()
                if self._admission.in_flight >= self._admission.limit:
                    self._report(
                        Stage.QUEUED,
                        "queued behind MaxConcurrent: waiting for a generation slot",
                        waiting=WaitReason.MAX_CONCURRENT.value,
                    )
                async with self._admission.slot():
                    self._admitted_at = self._clock()
                    await self._attempt()
            except OrchestratorError as exc:  # refused before admission (no key...)
                self._fail(exc)
                await self._shut_down()
            except anyio.get_cancelled_exc_class():  # cancelled while queued
                self._cancel()
                await self._shut_down()
                raise
        finally:
            self._report_final()
        failure = self.chart.failure
        if isinstance(failure, OrchestratorError):
            failure.path = tuple(self.recorder.path)
            raise failure
        return self._result()

    async def _attempt(self) -> None:
        """The admitted part: drive, and on every path shut down inside the slot."""
        try:
            await self._drive()
        except OrchestratorError as exc:
            self._fail(exc)
        except anyio.get_cancelled_exc_class():
            self._cancel()
            await self._shut_down()
            raise
        except Exception as exc:
            log.exception("[RunPodServerless] unexpected error in the engine")
            self._fail(exc)
            await self._shut_down()
            raise
        await self._shut_down()

    # --- the phases ---------------------------------------------------------------------

    async def _drive(self) -> None:
        station = self._station
        with anyio.move_on_after(self._timeouts.startup) as startup:
            seat = station.try_take()
            if seat is not None:
                self._take(seat)
                self.chart.send("reuse_warm")
            else:
                self.chart.send("wake")
                self._report(Stage.BOOTING, "waiting for a worker", waiting="requesting")
                self._take(await station.acquire(self._on_waiting))
                if self.chart.state_id == "waking":
                    self.chart.send("accepted")
                self.chart.send("worker_ready")
            await self._check_ready()
        if startup.cancelled_caught:
            raise WorkerNotReadyError(
                self._timeouts.startup,
                last_status=self._wake_job.status if self._wake_job else None,
                phase=self._phase(),
                job_id=self._wake_job.id if self._wake_job else None,
            )
        await self._generate()
        self.chart.send("release")

    def _take(self, seat: Seat) -> None:
        self._seat = seat
        self._handle = seat.handle

    def _on_waiting(self, waiting: Waiting) -> None:
        """A report from the station on why the generation still waits for a worker."""
        if self.chart.state_id not in ("waking", "polling"):
            return
        if waiting.job is not None:
            self._wake_job = waiting.job
            if self.chart.state_id == "waking":
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
        assert self._seat is not None
        if not self._seat.checked:
            await wait_until_swarm_ready(
                self._swarm(),
                poll_interval=self._poll_interval,
                on_loading=lambda: self._report(
                    Stage.BOOTING,
                    "the worker's SwarmUI is loading its backend",
                    waiting=WaitReason.MODEL_LOADING.value,
                ),
            )
        self._report(
            Stage.READY,
            f"worker {self._seat.handle.worker_id} is ready",
            worker_id=self._seat.handle.worker_id,
            cold_start=self._seat.cold,
        )

    async def _generate(self) -> None:
        self.chart.send("generate")
        swarm = self._swarm()
        self._report(Stage.GENERATING, "generating", percent=0.0)
        with anyio.move_on_after(self._timeouts.generation) as deadline:
            try:
                self._images = await swarm.generate(
                    self.request.params,
                    images=self.request.images,
                    transport="http" if self._transport == "http" else "ws",
                    on_event=self._on_swarm_event,
                    expected_size=expected_image_size(self.request.params),
                )
            except TransportError:
                self._broken = True
                raise
        if deadline.cancelled_caught:
            raise GenerationTimeoutError(self._timeouts.generation, phase=Phase.GENERATING)

    async def _shut_down(self) -> None:
        """ShuttingDown: release the worker, shielded and bounded, then reach a final state."""
        if self.chart.state_id != "shutting_down":
            return
        seat = None if self._given_back else self._seat
        self._given_back = True
        if seat is not None:
            self._report(Stage.RELEASING, "giving the worker back")
        elif "Waking" in self.recorder.path:
            self._report(Stage.RELEASING, "withdrawing the request for a worker")
        with anyio.CancelScope(shield=True), anyio.move_on_after(self._timeouts.release) as scope:
            if seat is not None:
                await self._station.give_back(seat, broken=self._broken)
        if scope.cancelled_caught:
            log.warning(
                "[RunPodServerless] releasing worker %s took over %g s; its keepalive %s ends "
                "at its execution timeout at the latest",
                self._handle.worker_id if self._handle else "?",
                self._timeouts.release,
                self._handle.hold_job_id if self._handle else "?",
            )
        self.chart.send("released")

    # --- helpers ------------------------------------------------------------------------

    @property
    def _station(self) -> Station:
        assert self._station_or_none is not None, "connect() runs before any phase"
        return self._station_or_none

    def _swarm(self) -> SwarmUIClient:
        assert self._handle is not None
        if self._swarm_client is None:
            self._swarm_client = self._handle.swarm_client(
                self._session,
                session_id=self._seat.session_id if self._seat else None,
                request_timeout=self._timeouts.request,
            )
        return self._swarm_client

    def _phase(self) -> Phase:
        return _PHASE_OF_STATE.get(self.chart.state_id, Phase.RELEASING)

    def _cancel(self) -> None:
        if self.chart.state_id not in ("shutting_down", "done", "failed", "cancelled"):
            self.chart.send("cancel")

    def _fail(self, exc: BaseException) -> None:
        if self.chart.state_id in ("shutting_down", "done", "failed", "cancelled"):
            return
        if isinstance(exc, OrchestratorError):
            exc.with_context(
                phase=self._phase(),
                worker_id=self._handle.worker_id if self._handle else None,
                job_id=self._wake_job.id if self._wake_job else None,
            )
        event = (
            "timeout" if isinstance(exc, WorkerNotReadyError | GenerationTimeoutError) else "error"
        )
        log.warning("[RunPodServerless] generation failed in %s: %s", self._phase(), exc)
        self.chart.send(event, failure=exc)

    def _on_swarm_event(self, event: GenerationEvent) -> None:
        if isinstance(event, Progress):
            done = len(self._images)
            overall = event.overall
            self._report(
                Stage.GENERATING,
                f"generating {overall:.0%}",
                percent=overall,
                batch_index=event.batch_index,
                done=done,
            )
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
        if self._on_progress is None:
            return
        event = ProgressEvent(
            stage=stage,
            message=message,
            elapsed=self._clock() - self._submitted_at,
            percent=percent,
            detail={k: v for k, v in detail.items() if v is not None},
        )
        try:
            self._on_progress(event)
        except Exception:
            log.exception("[RunPodServerless] a progress callback raised; ignored")

    def _report_final(self) -> None:
        outcome = self.chart.outcome
        if outcome is None or self.chart.state_id not in ("done", "failed", "cancelled"):
            return
        failure = self.chart.failure
        message = {
            Outcome.SUCCEEDED: f"{len(self._images)} image(s) done",
            Outcome.FAILED: f"failed: {failure}",
            Outcome.CANCELLED: "cancelled; the worker was released",
        }[outcome]
        self._report(_FINAL_STAGE[outcome], message)

    def _result(self) -> GenerationResult:
        seconds = self.recorder.seconds_in
        seat = self._seat
        cold = seat is not None and seat.cold
        admitted = self._admitted_at if self._admitted_at is not None else self._submitted_at
        return GenerationResult(
            images=tuple(self._images),
            cold_start=cold,
            timings=PhaseTimings(
                queued=admitted - self._submitted_at,
                waking=seconds("Waking"),
                polling=seconds("Polling"),
                ready=seconds("Ready"),
                generating=seconds("Generating"),
                releasing=seconds("ShuttingDown"),
                total=self._clock() - self._submitted_at,
            ),
            path=tuple(self.recorder.path),
            worker_id=self._handle.worker_id if self._handle else None,
            job_ids=seat.job_ids if seat is not None else (),
            runpod_delay_ms=seat.delay_ms if seat is not None and cold else None,
            gpu_seconds=self.gpu_seconds,
        )

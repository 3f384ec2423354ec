"""The engine: drives one generation's chart with anyio tasks.

Transitions first, I/O second: every step awaits its I/O, then ``send()``s the outcome into the
:class:`~statecharts.GenerationChart`. Deadlines are anyio cancel scopes (StartupTimeoutSec
covers Waking, Polling and Ready; GenerationTimeoutSec covers Generating). ShuttingDown runs
in a shielded scope on every path — success, error, timeout, cancellation — so no worker is
left billing.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import anyio
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode, Tracer

from observability import ChartSpans, CostLedger, GenerationCost, Telemetry, span_attributes
from observability import span_time_ns as _span_now
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
    WorkerSession,
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
# Progress stages that a state span already shows (Ready, ShuttingDown, the final states):
# no span event repeats them.
_STAGES_SEEN_AS_SPANS = frozenset(
    {Stage.READY, Stage.RELEASING, Stage.DONE, Stage.FAILED, Stage.CANCELLED}
)
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
    >>> chart, recorder, spans = stock.take()
    >>> chart.state_id, recorder.path
    ('idle', ['Idle'])

    With a ``tracer``, each chart also carries its (silent until started) span listener.
    """

    def __init__(
        self, clock: Callable[[], float] = anyio.current_time, tracer: Tracer | None = None
    ) -> None:
        self._clock = clock
        self._tracer = tracer
        self._ready: list[tuple[GenerationChart, PathRecorder, ChartSpans]] = []

    def take(self) -> tuple[GenerationChart, PathRecorder, ChartSpans]:
        """A fresh chart (state Idle, entered now) with its path recorder and span listener."""
        if not self._ready:
            return self._build()
        chart, recorder, spans = self._ready.pop()
        for visit in recorder.visits:  # Idle, entered when built: it starts now
            visit.entered_at = self._clock()
        return chart, recorder, spans

    def refill(self) -> None:
        """Build one chart ahead if none is ready."""
        if not self._ready:
            self._ready.append(self._build())

    def _build(self) -> tuple[GenerationChart, PathRecorder, ChartSpans]:
        recorder = PathRecorder(self._clock)
        spans = ChartSpans(self._tracer or trace.get_tracer("swarmpod"))
        return GenerationChart(listeners=[recorder, spans]), recorder, spans


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
        telemetry: where its spans and metrics go (a root span, one child per state).
        costs: the ledger its cost is attributed in (``result.cost``).
        endpoint_id: the endpoint, for span attributes.
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
        telemetry: Telemetry | None = None,
        costs: CostLedger | None = None,
        endpoint_id: str = "",
    ) -> None:
        self.request = request
        self._connect = connect
        self._use: WorkerSession | None = None
        self._seat: Seat | None = None
        self._session = session
        self._admission = admission
        self._timeouts = timeouts
        self._poll_interval = poll_interval
        self._transport = "http" if transport == "http" else "ws"
        self._on_progress = on_progress
        self._clock = clock
        self._telemetry = telemetry or Telemetry.default()
        self.chart, self.recorder, self.spans = (
            charts or ChartStock(clock, self._telemetry.tracer)
        ).take()
        self._submitted_at = clock()
        self.generation_id = uuid.uuid4().hex[:16]
        model = request.params.get("model")
        self.model = str(model) if model is not None else None
        self._costs = costs or CostLedger()
        self.cost: GenerationCost = self._costs.generation(
            self.generation_id, user=request.user, model=self.model
        )
        self._endpoint_id = endpoint_id
        self._root: Span | None = None
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
        root = self._start_trace()
        try:
            with trace.use_span(root, end_on_exit=False, record_exception=False):
                await self._run()
        finally:
            self._end_trace(root)
        failure = self.chart.failure
        if isinstance(failure, OrchestratorError):
            final = failure.in_context(path=tuple(self.recorder.path))
            if final is failure:
                raise failure
            raise final from failure
        return self._result()

    async def _run(self) -> None:
        try:
            try:
                self._use = WorkerSession(
                    await self._connect(),
                    http=self._session,
                    request_timeout=self._timeouts.request,
                    release_timeout=self._timeouts.release,
                    poll_interval=self._poll_interval,
                )
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
        use = self._worker_use
        with anyio.move_on_after(self._timeouts.startup) as startup:
            if use.take_warm():
                assert use.seat is not None
                self._take(use.seat)
                self.chart.send("reuse_warm")
            else:
                self.chart.send("wake")
                self._report(Stage.BOOTING, "waiting for a worker", waiting="requesting")
                self._take(await use.acquire(self._on_waiting))
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
        await self._worker_use.ready(
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
                self._worker_use.mark_broken()
                raise
        if deadline.cancelled_caught:
            raise GenerationTimeoutError(self._timeouts.generation, phase=Phase.GENERATING)

    async def _shut_down(self) -> None:
        """ShuttingDown: release the worker, shielded and bounded, then reach a final state."""
        if self.chart.state_id != "shutting_down":
            return
        seat = self._seat
        if seat is not None:
            self._report(Stage.RELEASING, "giving the worker back")
        elif "Waking" in self.recorder.path:
            self._report(Stage.RELEASING, "withdrawing the request for a worker")
        self._account(seat)
        given_back = True
        if self._use is not None:
            given_back = await self._use.give_back()
        if not given_back:
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
    def _worker_use(self) -> WorkerSession:
        assert self._use is not None, "connect() runs before any phase"
        return self._use

    def _swarm(self) -> SwarmUIClient:
        return self._worker_use.swarm()

    def _phase(self) -> Phase:
        return _PHASE_OF_STATE.get(self.chart.state_id, Phase.RELEASING)

    def _cancel(self) -> None:
        if self.chart.state_id not in ("shutting_down", "done", "failed", "cancelled"):
            self.chart.send("cancel")

    def _fail(self, exc: BaseException) -> None:
        if self.chart.state_id in ("shutting_down", "done", "failed", "cancelled"):
            return
        if isinstance(exc, OrchestratorError):
            known = exc.in_context(
                phase=self._phase(),
                worker_id=self._handle.worker_id if self._handle else None,
                job_id=self._wake_job.id if self._wake_job else None,
            )
            if known is not exc:
                known.__cause__ = exc
            exc = known
        event = (
            "timeout" if isinstance(exc, WorkerNotReadyError | GenerationTimeoutError) else "error"
        )
        log.warning("[RunPodServerless] generation failed in %s: %s", self._phase(), exc)
        self.chart.send(event, failure=exc)

    def _on_swarm_event(self, event: GenerationEvent) -> None:
        if isinstance(event, Progress):
            overall = event.overall
            if self.spans.recording:  # the hot path: one per step, kept lean
                self.spans.add_event("progress", {"percent": overall, "image": event.batch_index})
            if self._on_progress is not None:
                self._notify(
                    Stage.GENERATING,
                    f"generating {overall:.0%}",
                    overall,
                    {"batch_index": event.batch_index, "done": len(self._images)},
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
        if self.spans.recording and stage not in _STAGES_SEEN_AS_SPANS:
            self.spans.add_event(
                stage.value,
                {"message": message, **span_attributes({"percent": percent, **detail})},
            )
        if self._on_progress is not None:
            self._notify(stage, message, percent, detail)

    def _notify(
        self, stage: Stage, message: str, percent: float | None, detail: Mapping[str, Any]
    ) -> None:
        assert self._on_progress is not None
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

    # --- tracing and cost -----------------------------------------------------------------

    def _start_trace(self) -> Span:
        """The generation's root span (child of the caller's current span, if any)."""
        started = _span_now() - int((self._clock() - self._submitted_at) * 1e9)
        attributes = span_attributes(
            {
                "generation.id": self.generation_id,
                "user": self.request.user,
                "model": self.model,
                "endpoint.id": self._endpoint_id or None,
                "images.requested": self.request.images,
            },
            prefix="swarmpod.",
        )
        root = self._telemetry.tracer.start_span(
            f"Generation:{self.model or 'default'}", start_time=started, attributes=attributes
        )
        self._root = root
        self.cost.span_context = root.get_span_context()
        self.spans.start(root, self.chart, self._span_name)
        return root

    def _span_name(self, state: str) -> str:
        """``Phase:detail`` span names (``Waking:runpod``, ``Ready:<worker>``, ...)."""
        if state in ("Waking", "Polling"):
            return f"{state}:runpod"
        if state == "Ready" and self._handle is not None:
            return f"Ready:{self._handle.worker_id}"
        if state == "Generating":
            return f"Generating:{self.model or 'default'}"
        return state

    def _end_trace(self, root: Span) -> None:
        """Close the state spans, describe the outcome on the root, end it; record metrics."""
        self.spans.close()
        outcome = self.chart.outcome
        startup = self._startup_seconds()
        if root.is_recording():  # no attribute work when tracing is off
            self._describe(root, startup)
        total = self._clock() - self._submitted_at
        root.end(end_time=_span_now())
        instruments = self._telemetry.instruments
        labels = {"outcome": outcome.value if outcome else "failed", "model": self.model or ""}
        instruments.generation.record(total, labels)
        if self.cold_start and outcome is not Outcome.CANCELLED:
            instruments.cold_start.record(startup, {"model": self.model or ""})

    def _describe(self, root: Span, startup: float) -> None:
        """The outcome's facts on the root span (status ERROR with type and phase on failure)."""
        seat, handle = self._seat, self._handle
        outcome = self.chart.outcome
        root.set_attributes(
            span_attributes(
                {
                    "outcome": outcome.value if outcome else "failed",
                    "cold_start": self.cold_start,
                    "worker.id": handle.worker_id if handle else None,
                    "lease.id": handle.hold_job_id if handle else None,
                    "protocol": handle.protocol if handle else None,
                    "images": len(self._images),
                    "runpod.job_id": self._job_id(),
                    "runpod.delay_ms": seat.delay_ms if seat is not None and seat.cold else None,
                    "runpod.execution_ms": handle.receipt.execution_ms if handle else None,
                    "startup_s": startup if self.cold_start else None,
                    "gpu_seconds.boot": self.cost.boot_s,
                    "gpu_seconds.execution": self.cost.execution_s,
                },
                prefix="swarmpod.",
            )
        )
        failure = self.chart.failure
        if outcome is Outcome.FAILED or failure is not None:
            phase = getattr(failure, "phase", None)
            root.set_status(Status(StatusCode.ERROR, type(failure).__name__))
            root.set_attributes(
                span_attributes(
                    {"error.type": type(failure).__name__, "error.phase": phase or self._phase()}
                )
            )

    def _job_id(self) -> str | None:
        """The RunPod job that got this generation its worker (v1 wake-up, v2 lease)."""
        seat = self._seat
        if seat is not None and seat.job_ids:
            return seat.job_ids[0]
        return self._wake_job.id if self._wake_job is not None else None

    def _startup_seconds(self) -> float:
        seconds = self.recorder.seconds_in
        return seconds("Waking") + seconds("Polling") + seconds("Ready")

    def _account(self, seat: Seat | None) -> None:
        """Tell the worker's bill what this generation used, before giving the worker back."""
        seconds = self.recorder.seconds_in
        cost = self.cost
        cost.cold_start = self.cold_start
        cost.execution_s = seconds("Ready") + seconds("Generating")
        cost.boot_s = seconds("Waking") + seconds("Polling") if self.cold_start else 0.0
        if seat is not None:
            seat.observer.served(cost, cost.execution_s)
        elif seat is None:
            self._costs.settle_alone(cost)

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
            cost=self.cost,
            generation_id=self.generation_id,
        )

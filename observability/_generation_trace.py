"""A generation's observer: its trace (a root span, a child per chart state, its progress as
span events), its metrics, and its cost.

The orchestrator makes one per generation (:meth:`GenerationTraces.observe`) within the caller's
context, so the root span is a child of whatever span the caller is in (a service request).
The engine tells it what happens (:mod:`orchestrator._events`); it never reaches into the
engine beyond the run's facts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Protocol

from opentelemetry.trace import Span, Status, StatusCode

from ._chart_spans import ChartSpans, span_attributes
from ._clock import span_time_ns
from ._cost import CostLedger, GenerationCost
from ._telemetry import Telemetry

__all__ = ["GenerationTrace", "GenerationTraces"]

# Progress stages that a state span already shows (Ready, ShuttingDown, the final states):
# no span event repeats them.
_STAGES_SEEN_AS_SPANS: Final = frozenset({"ready", "releasing", "done", "failed", "cancelled"})
_PROMPT_CHARS: Final = 200


class _Seat(Protocol):
    @property
    def cold(self) -> bool: ...
    @property
    def observer(self) -> Any: ...
    @property
    def handle(self) -> Any: ...
    @property
    def delay_ms(self) -> int | None: ...
    @property
    def job_ids(self) -> tuple[str, ...]: ...


class _Run(Protocol):
    """What the observer reads of a generation run (the engine's ``GenerationRun``)."""

    generation_id: str
    model: str | None
    clock: Any
    submitted_at: float
    request: Any
    plan: Any
    recorder: Any
    chart: Any
    images: Any
    wake_job: Any

    @property
    def seat(self) -> Any: ...
    @property
    def cold_start(self) -> bool: ...
    @property
    def elapsed(self) -> float: ...
    def phase(self) -> Any: ...


class GenerationTrace:
    """One generation's spans, metrics and cost (the generation observer the engine expects).

    Attributes:
        cost: the generation's cost record (``result.cost``); final once its worker's bill
            closes.
    """

    def __init__(self, telemetry: Telemetry, costs: CostLedger, run: _Run) -> None:
        self._telemetry = telemetry
        self._costs = costs
        request = run.request
        self.cost: GenerationCost = costs.generation(
            run.generation_id, user=request.user, model=run.model
        )
        started = span_time_ns() - int(run.elapsed * 1e9)
        prompt = request.params.get("prompt")
        self._root: Span = telemetry.start_span(
            f"Generation:{run.model or 'default'}",
            start_time=started,
            attributes=span_attributes(
                {
                    "generation.id": run.generation_id,
                    "user": request.user,
                    "model": run.model,
                    "endpoint.id": run.plan.endpoint_id or None,
                    "images.requested": request.images,
                    "prompt": str(prompt)[:_PROMPT_CHARS] if prompt is not None else None,
                },
                prefix="swarmpod.",
            ),
        )
        self.cost.span_context = self._root.get_span_context()
        self._model = run.model or "default"
        self._worker: str | None = None
        self._spans = ChartSpans(telemetry.tracer, recorder=telemetry.span_recorder)
        self._spans.start(self._root, run.chart, self._span_name)
        self._seat: Any = None
        self._entered: dict[str, float] = {}
        self._seconds: dict[str, float] = {}
        self._clock = run.clock

    # --- the chart ---------------------------------------------------------------------------

    def on_enter_state(self, state: Any, event: Any) -> None:
        """A phase begins: its span opens; ShuttingDown tells the worker's bill what the
        generation used (before the worker is given back)."""
        name = str(state.name)
        self._entered[name] = self._clock()
        self._spans.on_enter_state(state, event)
        if name == "ShuttingDown":
            self._account()

    def on_exit_state(self, state: Any) -> None:
        """A phase ends: its span ends."""
        name = str(state.name)
        entered = self._entered.pop(name, None)
        if entered is not None:
            self._seconds[name] = self._seconds.get(name, 0.0) + self._clock() - entered
        self._spans.on_exit_state(state)

    # --- the engine's events -------------------------------------------------------------

    def reported(
        self, run: _Run, stage: Any, message: str, percent: float | None, detail: Mapping[str, Any]
    ) -> None:
        """A progress report becomes a span event of the current phase (unless the phase's
        own span says it already)."""
        if self._spans.recording and str(stage) not in _STAGES_SEEN_AS_SPANS:
            self._spans.add_event(
                str(stage), {"message": message, **span_attributes({"percent": percent, **detail})}
            )

    def stepped(self, run: _Run, percent: float, image: int, images_done: int) -> None:
        """A sampling step: a ``progress`` event (kept lean: one per step)."""
        if self._spans.recording:
            self._spans.add_event("progress", {"percent": percent, "image": image})

    def worker_taken(self, run: _Run, seat: _Seat) -> None:
        """The worker is known (``Ready:<worker>``)."""
        self._seat = seat
        self._worker = seat.handle.worker_id

    def finished(self, run: _Run) -> None:
        """The final state: spans end, the root says the outcome, the metrics are recorded."""
        self._spans.close()
        outcome = run.chart.outcome
        startup = sum(self._seconds.get(s, 0.0) for s in ("Waking", "Polling", "Ready"))
        if self._root.is_recording():
            self._describe(run, startup)
        self._root.end(end_time=span_time_ns())
        instruments = self._telemetry.instruments
        labels = {"outcome": outcome.value if outcome else "failed", "model": run.model or ""}
        instruments.generation.record(run.elapsed, labels)
        if run.cold_start and outcome is not None and outcome.value != "cancelled":
            instruments.cold_start.record(startup, {"model": run.model or ""})

    # --- helpers ---------------------------------------------------------------------------

    def _span_name(self, state: str) -> str:
        """``Phase:detail`` span names (``Waking:runpod``, ``Ready:<worker>``, ...)."""
        if state in ("Waking", "Polling"):
            return f"{state}:runpod"
        if state == "Ready" and self._worker is not None:
            return f"Ready:{self._worker}"
        if state == "Generating":
            return f"Generating:{self._model}"
        return state

    def _account(self) -> None:
        """What the generation used, told to its worker's bill (its share is attributed when
        the bill closes), or settled at once when it never reached a worker."""
        seat = self._seat
        cost = self.cost
        cold = seat is not None and seat.cold
        cost.cold_start = cold
        cost.execution_s = self._seconds.get("Ready", 0.0) + self._seconds.get("Generating", 0.0)
        boot = self._seconds.get("Waking", 0.0) + self._seconds.get("Polling", 0.0)
        cost.boot_s = boot if cold else 0.0
        if seat is not None:
            seat.observer.served(cost, cost.execution_s)
        else:
            self._costs.settle_alone(cost)

    def _describe(self, run: _Run, startup: float) -> None:
        """The outcome's facts on the root span (status ERROR with type and phase on failure)."""
        seat = run.seat
        handle = seat.handle if seat is not None else None
        outcome = run.chart.outcome
        job_id = seat.job_ids[0] if seat is not None and seat.job_ids else None
        if job_id is None and run.wake_job is not None:
            job_id = run.wake_job.id
        self._root.set_attributes(
            span_attributes(
                {
                    "outcome": outcome.value if outcome else "failed",
                    "cold_start": run.cold_start,
                    "worker.id": handle.worker_id if handle else None,
                    "lease.id": handle.hold_job_id if handle else None,
                    "protocol": handle.protocol if handle else None,
                    "images": len(run.images),
                    "runpod.job_id": job_id,
                    "runpod.delay_ms": seat.delay_ms if seat is not None and seat.cold else None,
                    "runpod.execution_ms": handle.receipt.execution_ms if handle else None,
                    "startup_s": startup if run.cold_start else None,
                    "gpu_seconds.boot": self.cost.boot_s,
                    "gpu_seconds.execution": self.cost.execution_s,
                },
                prefix="swarmpod.",
            )
        )
        failure = run.chart.failure
        if failure is not None or (outcome is not None and outcome.value == "failed"):
            phase = getattr(failure, "phase", None) or run.phase()
            self._root.set_status(Status(StatusCode.ERROR, type(failure).__name__))
            self._root.set_attributes(
                span_attributes({"error.type": type(failure).__name__, "error.phase": phase})
            )


class GenerationTraces:
    """Makes each generation's :class:`GenerationTrace`.

    Args:
        telemetry: where the spans and metrics go.
        costs: the ledger each generation's cost is recorded in.
    """

    def __init__(self, telemetry: Telemetry, costs: CostLedger) -> None:
        self._telemetry = telemetry
        self._costs = costs

    def observe(self, run: _Run) -> GenerationTrace:
        """The observer of ``run`` (call it in the caller's context: its span is the parent)."""
        return GenerationTrace(self._telemetry, self._costs, run)

"""RunPod API calls and settled costs, as metrics and span events.

The RunPod client reports every HTTP attempt (``ApiCall``) and every retry about to happen
(``RetryNotice``); a worker's runner makes its calls inside its own trace's context, so they
land on that worker's span. A cost that became final gets its ``Cost:*`` span and counters.
"""

from __future__ import annotations

from typing import Protocol

from opentelemetry import trace

from ._chart_spans import span_attributes
from ._clock import span_time_ns
from ._cost import CostLedger, GenerationCost, WorkerBill
from ._cost_spans import record_cost_span
from ._telemetry import Telemetry

__all__ = ["record_api_call", "record_retry", "record_settled"]


class _Call(Protocol):
    @property
    def route(self) -> str: ...
    @property
    def status(self) -> int | None: ...
    @property
    def attempt(self) -> int: ...
    @property
    def duration_s(self) -> float: ...
    @property
    def job_id(self) -> str | None: ...
    @property
    def error(self) -> str | None: ...


class _Retry(Protocol):
    @property
    def route(self) -> str: ...
    @property
    def failure(self) -> str: ...
    @property
    def attempt(self) -> int: ...
    @property
    def delay_s(self) -> float: ...


def record_api_call(telemetry: Telemetry, call: _Call) -> None:
    """Count a RunPod call (route, status) and note it on the current span."""
    status = str(call.status) if call.status is not None else "error"
    telemetry.instruments.api_calls.add(1, {"route": call.route, "status": status})
    span = trace.get_current_span()
    if span.is_recording():
        span.add_event(
            f"runpod.{call.route}",
            span_attributes(
                {
                    "http.status": call.status,
                    "attempt": call.attempt,
                    "duration_s": round(call.duration_s, 3),
                    "runpod.job_id": call.job_id,
                    "error": call.error,
                }
            ),
            timestamp=span_time_ns(),
        )


def record_retry(telemetry: Telemetry, retry: _Retry) -> None:
    """A ``retry`` event on the current span."""
    span = trace.get_current_span()
    if span.is_recording():
        span.add_event(
            "retry",
            {
                "route": retry.route,
                "failure": retry.failure,
                "attempt": retry.attempt,
                "delay_s": retry.delay_s,
            },
            timestamp=span_time_ns(),
        )


def record_settled(
    telemetry: Telemetry, costs: CostLedger, settled: GenerationCost | WorkerBill
) -> None:
    """A cost became final: a ``Cost:*`` span in its trace, and the cost counters."""
    instruments = telemetry.instruments
    if isinstance(settled, WorkerBill):
        billed = settled.billed_s or 0.0
        labels = {"phase": "unattributed", "user": "", "model": ""}
        instruments.gpu_seconds.add(billed, labels)
        instruments.cost.add(costs.billing.usd(billed), {"user": "", "model": ""})
        record_cost_span(telemetry.tracer, settled, costs.billing)
        return
    user, model = settled.user or "", settled.model or ""
    for phase, seconds in (
        ("boot", settled.boot_s),
        ("execution", settled.execution_s),
        ("idle_tail", settled.idle_tail_s),
    ):
        instruments.gpu_seconds.add(seconds, {"phase": phase, "user": user, "model": model})
    instruments.cost.add(settled.cost_usd, {"user": user, "model": model})
    record_cost_span(telemetry.tracer, settled, costs.billing)

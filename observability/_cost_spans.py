"""``Cost:*`` spans: a settled cost, recorded in the trace it belongs to."""

from __future__ import annotations

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, Span, Status, StatusCode, Tracer

from ._chart_spans import span_attributes
from ._clock import span_time_ns
from ._cost import EndpointBilling, GenerationCost, WorkerBill

__all__ = ["end_worker_span", "record_cost_span"]


def record_cost_span(
    tracer: Tracer, settled: GenerationCost | WorkerBill, billing: EndpointBilling
) -> None:
    """A zero-length ``Cost:generation`` span in the generation's trace (or
    ``Cost:unattributed`` in the worker's) with the GPU-seconds by phase and ``cost_usd``."""
    if isinstance(settled, GenerationCost):
        name = "Cost:generation"
        values: dict[str, object] = {
            "generation.id": settled.generation_id,
            "user": settled.user,
            "model": settled.model,
            "worker.id": settled.worker_id,
            "cold_start": settled.cold_start,
            "gpu_seconds.boot": settled.boot_s,
            "gpu_seconds.execution": settled.execution_s,
            "gpu_seconds.idle_tail": settled.idle_tail_s,
            "cost_usd": settled.cost_usd,
        }
    else:
        billed = settled.billed_s or 0.0
        name = "Cost:unattributed"
        values = {
            "worker.id": settled.worker_id,
            "cost.reason": settled.reason,
            "gpu_seconds.boot": settled.boot_s,
            "gpu_seconds.execution": 0.0,
            "gpu_seconds.idle_tail": billed - settled.boot_s,
            "cost_usd": billing.usd(billed),
        }
    parent = settled.span_context
    context = (
        trace.set_span_in_context(NonRecordingSpan(parent))
        if parent is not None and parent.is_valid
        else otel_context.Context()
    )
    now = span_time_ns()
    span = tracer.start_span(
        name,
        context=context,
        start_time=now,
        attributes=span_attributes(values, prefix="swarmpod."),
    )
    span.end(end_time=now)


def end_worker_span(
    root: Span,
    bill: WorkerBill | None,
    *,
    lease_id: str | None,
    worker_id: str | None,
    failure: BaseException | None = None,
    generations: int | None = None,
) -> None:
    """End a worker's root span (``Lease:*`` / ``Worker:*``) with its ids and estimated bill
    (``swarmpod.gpu_seconds.billed``, ``swarmpod.cost_usd``); status ERROR on ``failure``."""
    billed = bill.billed_s if bill is not None else None
    usd = bill.ledger.billing.usd(billed) if bill is not None and billed is not None else None
    root.set_attributes(
        span_attributes(
            {
                "lease.id": lease_id,
                "worker.id": worker_id,
                "gpu_seconds.billed": billed,
                "cost_usd": usd,
                "generations": generations,
            },
            prefix="swarmpod.",
        )
    )
    if failure is not None:
        root.set_status(Status(StatusCode.ERROR, type(failure).__name__))
        root.set_attribute("error.type", type(failure).__name__)
    root.end(end_time=span_time_ns())

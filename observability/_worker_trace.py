"""A worker's observer: its own trace (a root span, a child per worker-chart state, its RunPod
calls as events) and its estimated bill.

The pool makes one per worker (:class:`WorkerTraces` is the factory it is given) and attaches
it to the worker's chart as a listener; the worker's runner tells it the facts the chart does
not hold (who the worker is, when it was ready, what RunPod answered to the cancel, how its
life ended). RunPod calls the runner makes inside :meth:`WorkerTrace.active` land on this
trace.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace

from ._chart_spans import ChartSpans, span_attributes
from ._clock import span_time_ns
from ._cost import CostLedger, GenerationCost, WorkerBill
from ._cost_spans import end_worker_span
from ._telemetry import Telemetry

__all__ = ["WorkerTrace", "WorkerTraces"]


class _Facts(Protocol):
    @property
    def endpoint_id(self) -> str: ...
    @property
    def protocol(self) -> str: ...
    @property
    def number(self) -> int: ...
    @property
    def requested_at(self) -> float: ...


class _Stop(Protocol):
    @property
    def at(self) -> float: ...
    @property
    def job_existed(self) -> bool: ...
    @property
    def ended_by_itself(self) -> bool: ...
    @property
    def expected_boot_s(self) -> float: ...
    @property
    def generations(self) -> int: ...
    @property
    def lease_id(self) -> str | None: ...
    @property
    def worker_id(self) -> str | None: ...
    @property
    def failure(self) -> BaseException | None: ...


class WorkerTrace:
    """One worker's trace and bill (the worker observer :mod:`orchestrator.workers` expects).

    The root span is ``Lease:<endpoint>`` (protocol v2) or ``Worker:<endpoint>`` (v1), a trace
    of its own (not a child of whoever asked for the worker).
    """

    def __init__(self, telemetry: Telemetry, costs: CostLedger, facts: _Facts) -> None:
        kind = "Lease" if facts.protocol == "v2" else "Worker"
        self.bill: WorkerBill = costs.open_worker(
            f"{facts.endpoint_id} {facts.protocol} worker #{facts.number}",
            protocol=facts.protocol,
            requested_at=facts.requested_at,
        )
        self._root = telemetry.start_span(
            f"{kind}:{facts.endpoint_id}",
            context=otel_context.Context(),
            start_time=span_time_ns(),
            attributes=span_attributes(
                {
                    "endpoint.id": facts.endpoint_id,
                    "protocol": facts.protocol,
                    "lease.number": facts.number,
                },
                prefix="swarmpod.",
            ),
        )
        self.bill.span_context = self._root.get_span_context()
        self._spans = ChartSpans(telemetry.tracer, recorder=telemetry.span_recorder)
        self._spans.start(self._root)

    def on_enter_state(self, state: Any, event: Any) -> None:
        """A worker-chart state opens its span."""
        self._spans.on_enter_state(state, event)

    def on_exit_state(self, state: Any) -> None:
        """A worker-chart state's span ends."""
        self._spans.on_exit_state(state)

    def handed_over(self, worker_id: str) -> None:
        """The worker is known."""
        self.bill.assigned(worker_id)

    def ready(self, at: float) -> None:
        """The worker's boot ended."""
        self.bill.ready(at)

    def job_answered(self, delay_ms: int | None, execution_ms: int | None) -> None:
        """RunPod's delay and execution times of the holding job, on the root span."""
        self._root.set_attributes(
            span_attributes(
                {"runpod.delay_ms": delay_ms, "runpod.execution_ms": execution_ms},
                prefix="swarmpod.",
            )
        )

    def served(self, usage: Any, execution_s: float) -> None:
        """A generation used the worker: its share of the bill is attributed when it closes."""
        if isinstance(usage, GenerationCost):
            self.bill.serve(usage, execution_s=execution_s)

    def stopped(self, stop: _Stop) -> None:
        """The worker's life ended: its bill closes, its spans end."""
        self.bill.stop(
            stop.at if stop.job_existed else self.bill.requested_at,
            ended_by_itself=stop.ended_by_itself,
            expected_boot_s=stop.expected_boot_s,
        )
        self._spans.close()
        end_worker_span(
            self._root,
            self.bill,
            lease_id=stop.lease_id,
            worker_id=stop.worker_id,
            failure=stop.failure,
            generations=stop.generations,
        )

    def active(self) -> AbstractContextManager[Any]:
        """The worker's own context: RunPod calls made inside land on its trace."""
        return trace.use_span(self._root, end_on_exit=False, record_exception=False)


class WorkerTraces:
    """Makes each worker's :class:`WorkerTrace` (the factory a pool is given).

    Args:
        telemetry: where the spans go.
        costs: the ledger each worker's bill opens in.
    """

    def __init__(self, telemetry: Telemetry, costs: CostLedger) -> None:
        self._telemetry = telemetry
        self._costs = costs

    def __call__(self, facts: _Facts) -> WorkerTrace:
        """The observer of the worker about to be asked for."""
        return WorkerTrace(self._telemetry, self._costs, facts)

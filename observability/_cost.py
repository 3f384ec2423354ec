"""Cost attribution: what each generation cost, from swarmpod's estimate of every worker's bill.

RunPod bills a worker from its start until its full stop, rounded up to the whole second
(specs/runpod-api.md §4.5). swarmpod cannot read a bill per worker, so it estimates each one
from what it saw, with the endpoint's two scaling facts (:class:`EndpointBilling`):

- a worker starts ``queue_delay_s`` after the job that asked for it was queued (the queue-delay
  scaler; 0 with the request-count scaler);
- it stops ``idle_timeout_s`` after its job ended — by itself or cancelled by swarmpod (a
  cancel stops the job, not the worker: runpod SDK >= 1.10's per-job stop channel);
- a job withdrawn from the queue before the worker started costs nothing.

When a worker's bill closes (:meth:`WorkerBill.stop`), its billed seconds are shared among the
generations it served: the boot (start → ready) goes to the generations that waited for it (a
cold start), each generation's own time on the worker is its execution, and what is left — the
gaps between generations and the idle tail before the release — is split evenly among them. A
worker that served nobody (prewarm, a scale-out nobody needed) is "unattributed". So the
attributed seconds always sum to the estimated bill, and the estimate follows the bill.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from opentelemetry.trace import SpanContext

__all__ = ["CostLedger", "EndpointBilling", "GenerationCost", "WorkerBill"]

_HISTORY: Final = 10_000  # bills and generation costs kept for inspection (orch.costs)
_ROUNDING_SLACK_S: Final = 0.01  # clock noise must not bill an extra second
_SECONDS_PER_HOUR: Final = 3600.0


@dataclass(frozen=True)
class EndpointBilling:
    """How the endpoint bills, for cost attribution (mirror your endpoint's settings).

    >>> EndpointBilling(price_per_hour=0.69).usd(3600)
    0.69

    Attributes:
        price_per_hour: USD per GPU-hour (GpuPricePerHour).
        queue_delay_s: the queue-delay scaler's delay (RunPod default 4 s; 0 for the
            request-count scaler).
        idle_timeout_s: the endpoint's idle timeout (RunPod default 5 s), billed after the
            worker's last job ends (by itself or cancelled).
    """

    price_per_hour: float = 0.69
    queue_delay_s: float = 4.0
    idle_timeout_s: float = 5.0

    def usd(self, seconds: float) -> float:
        """The price of ``seconds`` GPU-seconds."""
        return seconds * self.price_per_hour / _SECONDS_PER_HOUR


@dataclass
class GenerationCost:
    """What one generation cost, split by phase; ``final`` once its worker's bill closed.

    Until then ``boot_s`` and ``execution_s`` hold what the generation itself measured and
    ``idle_tail_s`` is 0; the worker's release fills in the shares.

    Attributes:
        generation_id: the generation.
        user: who asked (None: the backend's own key).
        model: the model asked for.
        worker_id: the worker it ran on, if it reached one.
        cold_start: whether it waited for its worker to boot.
        price_per_hour: USD per GPU-hour.
        boot_s: its share of the worker's boot.
        execution_s: its time on the worker.
        idle_tail_s: its share of the worker's idle time (gaps and the tail before release).
        final: whether the worker's bill closed (the figures no longer change).
        span_context: the generation's root span, which its ``Cost:generation`` span joins.
    """

    generation_id: str
    user: str | None = None
    model: str | None = None
    worker_id: str | None = None
    cold_start: bool = False
    price_per_hour: float = 0.69
    boot_s: float = 0.0
    execution_s: float = 0.0
    idle_tail_s: float = 0.0
    final: bool = False
    span_context: SpanContext | None = field(default=None, repr=False)

    @property
    def gpu_seconds(self) -> float:
        """Boot + execution + idle tail."""
        return self.boot_s + self.execution_s + self.idle_tail_s

    @property
    def cost_usd(self) -> float:
        """The GPU-seconds at ``price_per_hour``."""
        return self.gpu_seconds * self.price_per_hour / _SECONDS_PER_HOUR


@dataclass(eq=False)
class _Served:
    cost: GenerationCost
    execution_s: float


@dataclass(eq=False)
class WorkerBill:
    """One worker's billed run as swarmpod estimates it (see the module docstring).

    Made by :meth:`CostLedger.open_worker` when a worker is asked for; the worker's observer
    reports what it sees (:meth:`assigned`, :meth:`ready`, :meth:`stop`) and each generation's
    observer what it used (:meth:`serve`). Once closed and shared out, only the count of the
    generations it served is kept (:attr:`generations`).
    """

    ledger: CostLedger
    label: str
    protocol: str
    requested_at: float
    worker_id: str | None = None
    ready_at: float | None = None
    stopped_at: float | None = None
    billed_s: float | None = None
    boot_s: float = 0.0
    reason: str = "no generation"
    served: list[_Served] = field(default_factory=list)
    generations: int = 0
    span_context: SpanContext | None = field(default=None, repr=False)

    @property
    def started_at(self) -> float:
        """When the worker started, as the queue-delay scaler starts one."""
        return self.requested_at + self.ledger.billing.queue_delay_s

    @property
    def closed(self) -> bool:
        """Whether :meth:`stop` ran (the figures are final)."""
        return self.billed_s is not None

    def assigned(self, worker_id: str) -> None:
        """The worker holding the job is known."""
        self.worker_id = worker_id

    def ready(self, at: float) -> None:
        """The worker answered, ready to generate (the end of its boot)."""
        if self.ready_at is None:
            self.ready_at = at

    def serve(self, cost: GenerationCost, *, execution_s: float) -> None:
        """A generation used this worker for ``execution_s`` seconds (call before giving back)."""
        cost.worker_id = cost.worker_id or self.worker_id
        if self.closed:  # the worker was gone already: what it measured is all there is
            cost.execution_s = 0.0
            self.ledger.settle_alone(cost)
            return
        self.served.append(_Served(cost, max(0.0, execution_s)))

    def stop(
        self, at: float, *, ended_by_itself: bool = False, expected_boot_s: float = 0.0
    ) -> None:
        """The worker's job ended at ``at`` (cancelled, or by itself): the worker stops being
        billed once it idled out (``idle_timeout_s`` later). A job withdrawn while queued
        (never ready) costs nothing when it went before the worker started, else the boot it
        caused (``expected_boot_s``) and the idle timeout. ``ended_by_itself`` is kept for the
        callers and no longer changes the bill."""
        if self.closed:
            return
        billing = self.ledger.billing
        if self.ready_at is None:
            if at <= self.started_at:
                self._close(at, 0.0)
                return
            at = max(at, self.started_at + expected_boot_s)
        stop = at + billing.idle_timeout_s
        raw = max(0.0, stop - self.started_at)
        self._close(stop, float(math.ceil(raw - _ROUNDING_SLACK_S)) if raw > 0 else 0.0)

    def _close(self, stopped_at: float, billed: float) -> None:
        self.stopped_at = stopped_at
        self.billed_s = billed
        ready_at = self.ready_at if self.ready_at is not None else stopped_at
        self.boot_s = min(billed, max(0.0, ready_at - self.started_at))
        self.ledger.settle(self)


class CostLedger:
    """Every worker bill and generation cost of one orchestrator, and their totals.

    Args:
        billing: the endpoint's billing facts.
        on_settled: called with each generation cost once it is final, and with each bill of a
            worker that served nobody (tracing and metrics hook in here).
    """

    def __init__(
        self,
        billing: EndpointBilling | None = None,
        *,
        on_settled: Callable[[GenerationCost | WorkerBill], None] | None = None,
    ) -> None:
        self.billing = billing or EndpointBilling()
        # Recent history only: a service runs for months; the totals below cover everything.
        self.bills: deque[WorkerBill] = deque(maxlen=_HISTORY)
        self.generations: deque[GenerationCost] = deque(maxlen=_HISTORY)
        self.unattributed_s = 0.0
        self._billed_s = 0.0
        self._attributed_s = 0.0
        self._open: dict[int, WorkerBill] = {}
        self._on_settled = on_settled
        self._numbers = itertools.count(1)

    def open_worker(self, label: str, *, protocol: str, requested_at: float) -> WorkerBill:
        """A worker is asked for now: its bill opens."""
        bill = WorkerBill(self, label, protocol, requested_at)
        self.bills.append(bill)
        self._open[id(bill)] = bill
        return bill

    def generation(
        self, generation_id: str | None = None, *, user: str | None, model: str | None
    ) -> GenerationCost:
        """The cost record of a new generation."""
        cost = GenerationCost(
            generation_id or f"gen-{next(self._numbers)}",
            user=user,
            model=model,
            price_per_hour=self.billing.price_per_hour,
        )
        self.generations.append(cost)
        return cost

    def mean_boot_s(self) -> float | None:
        """The mean boot (start → ready) of the recent workers seen ready, if any."""
        boots = [b.ready_at - b.started_at for b in self.bills if b.ready_at is not None]
        return sum(boots) / len(boots) if boots else None

    @property
    def billed_s(self) -> float:
        """Seconds billed by every closed bill."""
        return self._billed_s

    @property
    def attributed_s(self) -> float:
        """Seconds attributed: every final generation cost plus the unattributed workers."""
        return self._attributed_s + self.unattributed_s

    @property
    def open_bills(self) -> list[WorkerBill]:
        """Bills of workers swarmpod still holds (not stopped yet)."""
        return list(self._open.values())

    def settle_alone(self, cost: GenerationCost) -> None:
        """Close a generation that used no billed worker time (it never reached one)."""
        if not cost.final:
            cost.boot_s = cost.execution_s = cost.idle_tail_s = 0.0
            cost.final = True
            self._notify(cost)

    def settle(self, bill: WorkerBill) -> None:
        """Share a closed bill among the generations it served (the module docstring's rule)."""
        billed = bill.billed_s or 0.0
        self._open.pop(id(bill), None)
        self._billed_s += billed
        served = [s for s in bill.served if not s.cost.final]
        bill.generations = len(bill.served)
        bill.served = []  # shared out below: a long-running service keeps no list per bill
        if not served:
            self.unattributed_s += billed
            if billed > 0:
                self._notify(bill)
            return
        boot = bill.boot_s
        cold = [s for s in served if s.cost.cold_start] or served
        on_worker = billed - boot
        used = sum(s.execution_s for s in served)
        scale = on_worker / used if used > on_worker and used > 0 else 1.0
        idle_each = (on_worker - used * scale) / len(served)
        for item in served:
            cost = item.cost
            cost.boot_s = boot / len(cold) if item in cold else 0.0
            cost.execution_s = item.execution_s * scale
            cost.idle_tail_s = idle_each
            cost.worker_id = cost.worker_id or bill.worker_id
            cost.final = True
            self._attributed_s += cost.gpu_seconds
            self._notify(cost)

    def _notify(self, settled: GenerationCost | WorkerBill) -> None:
        if self._on_settled is not None:
            self._on_settled(settled)

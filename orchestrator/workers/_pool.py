"""The warm pool: v2 leases on one endpoint and key, shared by every generation.

A generation takes a free seat on a warm worker at once (:meth:`LeasePool.try_take`), or
queues in arrival order (:meth:`LeasePool.acquire`) while the pool requests leases for the
demand, up to ``MaxWorkers``. A worker runs as many generations at once as its SwarmUI's
backends allow (``max_usages``). When a seat frees up, the first in line takes it; a lease that
is still ``IN_QUEUE`` and no longer needed is withdrawn before it bills, one already running is
kept. A free worker is released after the idle window (:class:`IdleWindow`), or kept while a
prewarm floor asks for it.

Each lease is one background task that drives its :class:`~statecharts.LeaseChart`:
journal entry → ``/run`` (lease) → ``/stream`` long-polls until the lease is streamed →
SwarmUI ready → held (a long-poll notices the worker ending it) → ``/cancel`` → journal closed.
RunPod API calls per lease: one ``/run``, a few ``/stream`` long-polls while it boots, one per
five minutes while warm, one ``/cancel``; ``/health`` only for a job that stays queued.
"""

from __future__ import annotations

import functools
import logging
import math
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Final

import anyio
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span

from observability import (
    ChartSpans,
    CostLedger,
    Telemetry,
    WorkerBill,
    end_worker_span,
    span_attributes,
)
from observability import span_time_ns as span_now
from statecharts import LeaseChart

from ..errors import (
    JobFailedError,
    OrchestratorError,
    Phase,
    ProtocolMismatchError,
    RunPodError,
    TransportError,
    WorkerNotReadyError,
)
from ..runpod import Health, Job, JobStatus
from ..secrets import Secret
from ..swarmui import SwarmUIClient
from ._handle import Seat, WorkerHandle, copy_failure
from ._idle import IdleWindow
from ._journal import LeaseJournal
from ._readiness import wait_until_swarm_ready
from ._scaling import new_leases_needed
from ._v2 import LeaseTerms, V2Protocol
from ._waiting import Waiting, WaitingCallback, WaitReason, diagnose_queue

__all__ = ["LeasePool", "PoolStatus"]

log = logging.getLogger("swarmpod.workers")

Spawn = Callable[[Callable[[], Coroutine[Any, Any, None]]], object]
SwarmFactory = Callable[[WorkerHandle, str | None], SwarmUIClient]

# A lease still queued this long after its request gets a /health diagnosis (RunPod's scaler
# starts a worker after ~4 s: booting, throttled or crash-looping?); one /health answer serves
# every lease of the pool for a few seconds.
_EARLY_DIAGNOSIS_S: Final = 8.0
_HEALTH_MAX_AGE_S: Final = 5.0
_LATE_POLL_MS: Final = 60_000
_WARM_POLL_MS: Final = 300_000
# The worker ends a lease by itself only as a safety net: after our idle window plus this.
_WORKER_IDLE_MARGIN_S: Final = 60.0
# A lease is retired this long (plus the generation timeout) before its max_lease_seconds.
_RECYCLE_MARGIN_S: Final = 120.0
_DEFAULT_MAX_LEASE_S: Final = 3600.0
# A free worker idling beside a more recently used one is kept at least this long.
_SURPLUS_IDLE_MIN_S: Final = 10.0


@dataclass(frozen=True)
class PoolStatus:
    """What the pool holds right now.

    Attributes:
        warm: leases whose worker is ready (free or busy).
        busy: generations running on them.
        free_seats: seats a new generation could take at once.
        booting: leases requested and not ready yet (queued, booting, loading).
        waiting: generations queued for a seat.
        floor: workers the prewarm floor keeps.
    """

    warm: int
    busy: int
    free_seats: int
    booting: int
    waiting: int
    floor: int


@dataclass(eq=False)
class _Lease:
    number: int
    chart: LeaseChart
    terms: LeaseTerms
    requested_at: float
    job: Job | None = None
    handle: WorkerHandle | None = None
    entry: int | None = None
    session_id: str | None = None
    capacity: int = 1
    busy: int = 0
    ready: bool = False
    warm_at: float = math.inf
    idle_since: float = 0.0
    keep_until: float = 0.0
    retiring: bool = False
    withdrawing: bool = False
    suspect: bool = False
    booting_since: float | None = None
    unknown_job: bool = False
    ended_by_worker: bool = False
    reason: WaitReason = WaitReason.REQUESTING
    cancelled: bool = False
    seats_taken_at: list[float] = field(default_factory=list)
    changed: anyio.Event = field(default_factory=anyio.Event)
    bill: WorkerBill | None = None
    spans: ChartSpans | None = None
    root: Span | None = None

    def poke(self) -> None:
        event, self.changed = self.changed, anyio.Event()
        event.set()

    @property
    def live(self) -> bool:
        return self.chart.state_id not in ("released", "lost")

    @property
    def pending(self) -> bool:
        return self.live and not self.ready and self.chart.state_id != "draining"

    @property
    def free(self) -> int:
        if not self.ready or self.retiring or self.chart.state_id == "draining":
            return 0
        return max(0, self.capacity - self.busy)

    @property
    def label(self) -> str:
        return f"lease #{self.number}" + (f" ({self.job.id})" if self.job else "")

    def overdue(self, now: float, late_after_s: float | None) -> bool:
        """Not ready well past the measured cold start, or its lease output may be lost."""
        if self.suspect:
            return True
        return late_after_s is not None and now >= self.requested_at + late_after_s


@dataclass(eq=False)
class _Waiter:
    report: WaitingCallback
    arrived: float
    served: anyio.Event = field(default_factory=anyio.Event)
    seat: Seat | None = None
    failure: BaseException | None = None
    told: WaitReason | None = None

    def tell(self, waiting: Waiting) -> None:
        if waiting.reason is self.told:
            return
        self.told = waiting.reason
        try:
            self.report(waiting)
        except Exception:
            log.exception("[RunPodServerless] a waiting callback raised; ignored")


class LeasePool:
    """The v2 leases of one endpoint and key, and the generations waiting for them.

    Args:
        protocol: the v2 protocol (its client carries ``key``).
        key: the RunPod key the leases are opened with (journalled by fingerprint only).
        endpoint_id: the endpoint (for the journal and logs).
        spawn: starts a background task in the owner's task group.
        swarm_for: makes a SwarmUI client for a leased worker (and an open session id).
        idle: the endpoint's idle window (shared with the endpoint's other pools).
        max_workers: the most leases held at once (the endpoint's max workers).
        generation_timeout: GenerationTimeoutSec (leases retire before their max age by it).
        release_timeout: bound of one release (cancel), which runs shielded.
        startup_timeout: StartupTimeoutSec: a lease not streamed this long after its request
            is lost (its job cancelled) and replaced for whoever still waits.
        journal: where leases are journalled before they are requested (None = not at all).
        probing: the endpoint's protocol is not known yet (``auto``): hold one lease request
            at a time until a worker streamed a lease, so a v1 endpoint never gets a second
            worker woken by lease probes.
        on_confirmed: told ``"v2"`` when the first lease was streamed (to remember it).
        clock: the loop clock.
        costs: the ledger each lease's estimated bill opens in (cost attribution).
        telemetry: where each lease's trace goes (a root span, one child per lease state).
    """

    def __init__(
        self,
        protocol: V2Protocol,
        *,
        key: Secret,
        endpoint_id: str,
        spawn: Spawn,
        swarm_for: SwarmFactory,
        idle: IdleWindow,
        max_workers: int,
        generation_timeout: float,
        release_timeout: float,
        startup_timeout: float = 120.0,
        journal: LeaseJournal | None = None,
        probing: bool = False,
        on_confirmed: Callable[[str], None] | None = None,
        clock: Callable[[], float] = anyio.current_time,
        costs: CostLedger | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._protocol = protocol
        self._costs = costs or CostLedger()
        self._telemetry = telemetry or Telemetry.default()
        self._key = key
        self._endpoint_id = endpoint_id
        self._spawn = spawn
        self._swarm_for = swarm_for
        self._idle = idle
        self._max_workers = max_workers
        self._generation_timeout = generation_timeout
        self._release_timeout = release_timeout
        self._startup_timeout = startup_timeout
        self._journal = journal
        self._probing = probing
        self._on_confirmed = on_confirmed
        self._clock = clock
        self._leases: list[_Lease] = []
        self._waiters: deque[_Waiter] = deque()
        self._numbers = 0
        self._capacity_estimate = 1
        self._floor = 0
        self._closing = False
        self._mismatch: ProtocolMismatchError | None = None
        self._all_ended = anyio.Event()
        self._all_ended.set()
        self._generation_s: deque[float] = deque(maxlen=20)
        self._health: tuple[float, Health, WaitReason] | None = None
        self._cold_start_seen = False

    def __repr__(self) -> str:
        status = self.status()
        return (
            f"LeasePool(endpoint_id={self._endpoint_id!r}, key={self._key.fingerprint}, "
            f"warm={status.warm}, booting={status.booting}, waiting={status.waiting})"
        )

    # --- what generations call ------------------------------------------------------------

    @property
    def mismatch(self) -> ProtocolMismatchError | None:
        """Set once a lease showed that the endpoint speaks v1 (``auto`` falls back)."""
        return self._mismatch

    def owns(self, seat: Seat) -> bool:
        """Whether ``seat`` came from this pool."""
        return isinstance(seat.token, _Lease)

    def try_take(self) -> Seat | None:
        """A seat on a free warm worker at once, or None (also when others wait in line)."""
        if self._waiters or self._closing:
            return None
        lease = self._free_lease()
        return None if lease is None else self._seat(lease, cold=False)

    async def acquire(self, report: WaitingCallback) -> Seat:
        """Wait in line for a seat, requesting leases for the demand; the caller bounds it.

        Raises:
            ProtocolMismatchError: the endpoint's workers speak v1.
            OrchestratorError: the lease requested for this generation failed.
        """
        if self._mismatch is not None:
            raise copy_failure(self._mismatch) from self._mismatch
        if self._closing:
            raise RuntimeError("the pool is closing")
        waiter = _Waiter(report, arrived=self._clock())
        self._waiters.append(waiter)
        self._rebalance()
        if waiter.seat is None and waiter.failure is None:
            waiter.tell(self._waiting())
        try:
            await waiter.served.wait()
        except BaseException:
            with anyio.CancelScope(shield=True):
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                elif waiter.seat is not None:
                    await self.give_back(waiter.seat)
                self._rebalance()
            raise
        if waiter.failure is not None:
            raise copy_failure(waiter.failure) from waiter.failure
        assert waiter.seat is not None
        return waiter.seat

    async def give_back(self, seat: Seat, *, broken: bool = False) -> None:
        """Leave the seat; ``broken`` retires the worker (it stopped answering)."""
        lease = seat.token
        assert isinstance(lease, _Lease), "a seat from this pool"
        lease.busy -= 1
        if seat.taken_at in lease.seats_taken_at:
            lease.seats_taken_at.remove(seat.taken_at)
        if not broken:
            self._generation_s.append(self._clock() - seat.taken_at)
        if broken and not lease.retiring:
            lease.retiring = True
            log.warning(
                "[RunPodServerless] worker %s stopped answering; %s is released",
                lease.handle.worker_id if lease.handle else "?",
                lease.label,
            )
        if lease.busy == 0:
            lease.idle_since = self._clock()
            if lease.chart.state_id == "busy":
                lease.chart.send("free")
        self._poke_all()
        self._rebalance()

    # --- prewarm and shutdown ---------------------------------------------------------------

    def prewarm(self, workers: int, *, hold_s: float | None = None) -> int:
        """Make sure ``workers`` workers are warm or coming; returns how many were requested.

        A prewarmed worker stays warm at least ``hold_s`` (default: the idle window) after it
        is ready, then follows the idle window like any other.
        """
        workers = min(workers, 1 if self._probing else self._max_workers)
        live = sum(1 for lease in self._leases if lease.live and not lease.retiring)
        hold = self._idle.seconds if hold_s is None else hold_s
        started = 0
        for _ in range(max(0, workers - live)):
            self._start_lease(hold_s=hold)
            started += 1
        return started

    def set_floor(self, workers: int) -> None:
        """Keep at least ``workers`` leases (a prewarm schedule); 0 ends the floor."""
        self._floor = min(max(0, workers), self._max_workers)
        for lease in self._leases:
            lease.poke()
        self._rebalance()

    async def close(self) -> None:
        """Release every lease (withdraw queued ones) and wait until they ended, bounded."""
        self._closing = True
        self._floor = 0
        for waiter in list(self._waiters):
            waiter.failure = RuntimeError("the orchestrator is shutting down")
            waiter.served.set()
        self._waiters.clear()
        for lease in self._leases:
            lease.poke()
        with anyio.move_on_after(self._release_timeout + 5.0):
            await self._all_ended.wait()
        for lease in self._leases:
            if lease.live:
                log.warning("[RunPodServerless] %s did not end at shutdown", lease.label)

    def status(self) -> PoolStatus:
        """What the pool holds right now."""
        ready = [lease for lease in self._leases if lease.ready and lease.live]
        return PoolStatus(
            warm=len(ready),
            busy=sum(lease.busy for lease in ready),
            free_seats=sum(lease.free for lease in ready),
            booting=sum(1 for lease in self._leases if lease.pending),
            waiting=len(self._waiters),
            floor=self._floor,
        )

    # --- matching seats and demand (no I/O) -------------------------------------------------

    def _free_lease(self) -> _Lease | None:
        free = [lease for lease in self._leases if lease.free > 0]
        # The most recently used first: the others idle out sooner, which is cheaper.
        return max(free, key=lambda lease: (lease.busy, lease.idle_since), default=None)

    def _seat(self, lease: _Lease, *, cold: bool) -> Seat:
        assert lease.handle is not None
        lease.busy += 1
        if lease.chart.state_id == "idle":
            lease.chart.send("take")
        job_ids = (lease.job.id,) if cold and lease.job is not None else ()
        taken_at = self._clock()
        lease.seats_taken_at.append(taken_at)
        return Seat(
            handle=lease.handle,
            cold=cold,
            job_ids=job_ids,
            delay_ms=None,
            boot_s=lease.warm_at - lease.requested_at if cold else None,
            session_id=lease.session_id,
            checked=True,
            token=lease,
            taken_at=taken_at,
            bill=lease.bill,
        )

    def _rebalance(self, *, fresh: _Lease | None = None) -> None:
        """Seat waiters in order, request leases for the rest, withdraw queued leftovers.

        ``fresh``: a lease that just became ready; the waiters it seats now waited for its
        boot (a cold start). Later seats on it, and seats on workers that freed up, are warm.
        """
        while self._waiters:
            lease = self._free_lease()
            if lease is None:
                break
            waiter = self._waiters.popleft()
            waiter.seat = self._seat(lease, cold=lease is fresh and lease.warm_at > waiter.arrived)
            waiter.served.set()
        if self._closing:
            return
        now = self._clock()
        late_after = self._late_after_s() if self._cold_start_seen else None
        live = [lease for lease in self._leases if lease.live]
        pending = [lease for lease in live if lease.pending and not lease.withdrawing]
        # A lease overdue past its expected start (or whose output may be lost) is no capacity.
        on_time = [lease for lease in pending if not lease.overdue(now, late_after)]
        ready = [lease for lease in live if lease.ready and lease.chart.state_id != "draining"]
        usable_ready = [lease for lease in ready if not lease.retiring]
        new = max(
            new_leases_needed(
                now=now,
                waiting=len(self._waiters),
                seats_free_at=self._seats_free_at(usable_ready, on_time),
                cold_start_s=self._idle.cold_start_s,
                generation_s=self.generation_s,
            ),
            self._floor - len(usable_ready) - len(on_time),
        )
        room = (1 if self._probing else self._max_workers) - len(live)
        if new > room and self._waiters:  # a lease whose output may be lost holds no slot
            for lease in [lease for lease in pending if lease.suspect][: new - room]:
                self._give_up(lease)
                room += 1
        for _ in range(max(0, min(new, room))):
            self._start_lease(hold_s=0.0, for_floor=self._floor > 0)
        needed = math.ceil(len(self._waiters) / self._capacity_estimate)
        pending = [lease for lease in pending if not lease.withdrawing]
        on_time = [lease for lease in on_time if not lease.withdrawing]
        surplus = len(pending) - max(needed, self._floor - len(usable_ready))
        queued = [lease for lease in pending if lease.chart.state_id in ("requested", "queued")]
        stalled = [lease for lease in pending if lease.suspect and lease not in queued]
        for lease in [*reversed(queued), *stalled]:
            if surplus <= 0:
                break
            if lease in queued:
                lease.withdrawing = True
                lease.poke()
            else:
                self._give_up(lease)
            surplus -= 1
        self._tell_waiters()

    def _give_up(self, lease: _Lease) -> None:
        """Release a booting lease whose lease output may be lost (a stream answer was)."""
        log.warning(
            "[RunPodServerless] %s: a /stream answer was lost, so its lease may never arrive; "
            "it is released and replaced",
            lease.label,
        )
        lease.withdrawing = True
        lease.poke()

    @property
    def generation_s(self) -> float | None:
        """How long a generation holds its seat, on average lately (None before the first)."""
        if not self._generation_s:
            return None
        return sum(self._generation_s) / len(self._generation_s)

    def _seats_free_at(self, ready: list[_Lease], pending: list[_Lease]) -> list[float]:
        """When each seat held or coming is expected free: now, at a generation's expected
        end, or at a booting lease's expected ready time."""
        now, generation = self._clock(), self.generation_s
        times: list[float] = []
        for lease in ready:
            times += [now] * lease.free
            for taken_at in lease.seats_taken_at:
                times.append(math.inf if generation is None else max(now, taken_at + generation))
        expected_ready = self._idle.cold_start_s
        for lease in pending:
            times += [max(now, lease.requested_at + expected_ready)] * self._capacity_estimate
        return times

    def _poke_all(self) -> None:
        for lease in self._leases:
            lease.poke()

    def _idle_window_of(self, lease: _Lease) -> float:
        """The idle window of a free worker: the whole window for the most recently used one;
        a shorter one for others that idle beside it (a second idle worker only pays off when
        two generations overlap, and the batch's end should not leave every worker idling)."""
        window = self._idle.seconds
        idle = [
            other
            for other in self._leases
            if other.ready and other.live and other.busy == 0 and not other.retiring
        ]
        keeper = max(idle, key=lambda other: (other.idle_since, other.number), default=None)
        if keeper is None or keeper is lease:
            return window
        generation = self.generation_s
        surplus = window if generation is None else max(2 * generation, _SURPLUS_IDLE_MIN_S)
        return min(window, surplus)

    def _waiting(self) -> Waiting:
        pending = [lease for lease in self._leases if lease.pending and not lease.withdrawing]
        if not pending:
            return Waiting(WaitReason.WORKERS_BUSY)
        order = (
            WaitReason.MODEL_LOADING,
            WaitReason.BOOTING,
            WaitReason.UNHEALTHY,
            WaitReason.THROTTLED,
            WaitReason.QUEUED,
            WaitReason.REQUESTING,
        )
        best = min(pending, key=lambda lease: order.index(lease.reason))
        return Waiting(best.reason, job=best.job)

    def _tell_waiters(self) -> None:
        if not self._waiters:
            return
        waiting = self._waiting()
        for waiter in self._waiters:
            waiter.tell(waiting)

    def _set_reason(self, lease: _Lease, reason: WaitReason) -> None:
        if lease.reason is not reason:
            lease.reason = reason
            self._tell_waiters()

    # --- one lease's life (I/O) -----------------------------------------------------------

    def _start_lease(self, *, hold_s: float, for_floor: bool = False) -> None:
        self._numbers += 1
        window = self._idle.seconds
        keep = max(window, hold_s)
        terms = LeaseTerms(
            idle_seconds=max(window, 1.0) + _WORKER_IDLE_MARGIN_S,
            startup_grace_seconds=keep + _WORKER_IDLE_MARGIN_S,
            max_lease_seconds=_DEFAULT_MAX_LEASE_S,
        )
        if for_floor:  # kept by the floor, not by its idle time: the worker never idles it out
            terms = LeaseTerms(_DEFAULT_MAX_LEASE_S, _DEFAULT_MAX_LEASE_S, _DEFAULT_MAX_LEASE_S)
        spans = ChartSpans(self._telemetry.tracer)
        lease = _Lease(
            self._numbers, LeaseChart(listeners=[spans]), terms, requested_at=self._clock()
        )
        lease.spans = spans
        lease.bill = self._costs.open_worker(
            f"{self._endpoint_id} lease #{self._numbers}",
            protocol="v2",
            requested_at=lease.requested_at,
        )
        lease.keep_until = hold_s  # made absolute once the worker is ready
        self._leases.append(lease)
        self._all_ended = anyio.Event()

        async def run() -> None:
            await self._run_lease(lease)

        self._spawn(run)

    async def _run_lease(self, lease: _Lease) -> None:
        root = self._trace_lease(lease)
        with trace.use_span(root, end_on_exit=False, record_exception=False):
            await self._drive_lease(lease)

    def _trace_lease(self, lease: _Lease) -> Span:
        """The lease's own trace: a root span (not a child of whoever asked for it)."""
        root = self._telemetry.tracer.start_span(
            f"Lease:{self._endpoint_id}",
            context=otel_context.Context(),
            start_time=span_now(),
            attributes=span_attributes(
                {"endpoint.id": self._endpoint_id, "protocol": "v2", "lease.number": lease.number},
                prefix="swarmpod.",
            ),
        )
        lease.root = root
        if lease.bill is not None:
            lease.bill.span_context = root.get_span_context()
        assert lease.spans is not None
        lease.spans.start(root, lease.chart)
        return root

    def _end_trace(self, lease: _Lease, failure: BaseException | None) -> None:
        root, bill = lease.root, lease.bill
        if lease.spans is not None:
            lease.spans.close()
        if root is not None:
            end_worker_span(
                root,
                bill,
                lease_id=lease.job.id if lease.job else None,
                worker_id=lease.handle.worker_id if lease.handle else None,
                failure=failure,
                generations=len(lease.seats_taken_at),
            )

    async def _drive_lease(self, lease: _Lease) -> None:
        outcome = "lost"
        failure: BaseException | None = None
        try:
            if await self._bring_up(lease):
                outcome = await self._hold(lease)
            else:
                outcome = "withdrawn"
        except anyio.get_cancelled_exc_class():
            outcome = "cancelled"
            raise
        except Exception as exc:
            failure = exc
            outcome = "lost"
        finally:
            with anyio.CancelScope(shield=True):
                await self._end(lease, outcome, failure)

    async def _bring_up(self, lease: _Lease) -> bool:
        """Request the lease and wait for a ready worker; False when it was withdrawn."""
        if self._journal is not None:
            lease.entry = self._journal.begin(self._endpoint_id, "v2", self._key)
        job = await self._request(lease)
        lease.job = job
        if self._journal is not None and lease.entry is not None:
            self._journal.attach(lease.entry, job.id)
        lease.chart.send("submitted")
        self._set_reason(lease, WaitReason.QUEUED)
        log.info("[RunPodServerless] %s requested on %s", lease.label, self._endpoint_id)
        self._spawn(functools.partial(self._diagnose_early, lease))
        handle = await self._await_lease(lease, job)
        if handle is None:
            return False
        self._seen_running(lease)
        lease.handle = handle
        if lease.bill is not None:
            lease.bill.assigned(handle.worker_id)
        lease.chart.send("leased")
        if self._probing:
            self._probing = False
            if self._on_confirmed is not None:
                self._on_confirmed("v2")
        swarm = self._swarm_for(handle, None)
        capacity = await wait_until_swarm_ready(
            swarm,
            poll_interval=self._protocol.poll_interval,
            on_loading=lambda: self._set_reason(lease, WaitReason.MODEL_LOADING),
        )
        now = self._clock()
        lease.session_id = swarm.session_id
        lease.capacity = capacity
        self._capacity_estimate = capacity
        lease.ready = True
        lease.warm_at = now
        if lease.bill is not None:
            lease.bill.ready(now)
        lease.idle_since = now
        lease.keep_until = now + lease.keep_until
        self._idle.observe_cold_start(now - lease.requested_at)
        self._cold_start_seen = True
        log.info(
            "[RunPodServerless] %s: worker %s ready after %.1f s (%d at once)",
            lease.label,
            handle.worker_id,
            now - lease.requested_at,
            capacity,
        )
        self._poke_all()
        self._rebalance(fresh=lease)
        return True

    async def _request(self, lease: _Lease) -> Job:
        """``/run`` the lease with the pool's terms. Never abandoned half-way: a job RunPod
        created is always learnt (then used or cancelled), so the request is shielded from
        cancellation and bounded by the client's own request timeout. When it fails in a way
        that may still have created a job, the journal entry stays open."""
        with anyio.CancelScope(shield=True):
            try:
                job = await self._protocol.request_lease(terms=lease.terms)
            except OrchestratorError as exc:
                if not _surely_not_created(exc):
                    lease.unknown_job = True
                raise
        return job

    async def _await_lease(self, lease: _Lease, job: Job) -> WorkerHandle | None:
        """Long-poll the lease job's stream until the lease; None when it was withdrawn.

        A ``/stream`` answer is read once, so a poll is never abandoned: a lease no longer
        needed is withdrawn beside the poll (which then answers the job's end). Each
        long-poll lasts until the lease is late (well past the expected cold start), so a
        normal cold start costs one; after that one a minute, each with a ``/health`` check
        that says why it still waits (throttled? crash-looping?). A lease not streamed within
        StartupTimeoutSec of its request is lost (cancelled) and replaced.
        """
        polling = True
        handle: WorkerHandle | None = None
        failure: Exception | None = None
        async with anyio.create_task_group() as group:
            group.start_soon(self._withdraw_when_asked, lease, lambda: polling)
            try:
                handle = await self._stream_until_leased(lease, job)
            except Exception as exc:  # re-raised below, not wrapped in an exception group
                failure = exc
            finally:
                polling = False
                lease.poke()
        if failure is not None:
            raise failure
        return None if lease.cancelled else handle

    async def _withdraw_when_asked(self, lease: _Lease, polling: Callable[[], bool]) -> None:
        """Beside the stream poll: withdraw (or give up) the lease once it is not needed."""
        while polling():
            changed = lease.changed
            if (self._closing or lease.withdrawing) and lease.chart.state_id in (
                "queued",
                "booting",
            ):
                with anyio.CancelScope(shield=True):
                    if await self._withdraw(lease):
                        return
            await changed.wait()

    async def _stream_until_leased(self, lease: _Lease, job: Job) -> WorkerHandle | None:
        """Poll the stream until the lease arrives. A lease whose worker runs (bills) but has
        not streamed StartupTimeoutSec after RunPod was seen running it is lost; a queued one
        waits until it is withdrawn (the generations waiting for it have deadlines of their
        own)."""
        late_at = lease.requested_at + self._late_after_s()
        while True:
            now = self._clock()
            lost_at = math.inf
            if lease.booting_since is not None:
                lost_at = lease.booting_since + self._startup_timeout
            if now >= lost_at - 0.001:
                raise WorkerNotReadyError(
                    self._startup_timeout,
                    last_status=JobStatus.IN_PROGRESS.value,
                    phase=Phase.POLLING,
                    job_id=job.id,
                )
            poll_until = late_at if now < late_at - 5 else now + _LATE_POLL_MS / 1000
            wait_ms = int(min(poll_until, lost_at, now + 300.0) * 1000 - now * 1000)
            try:
                state, handle = await self._protocol.poll_lease(job.id, wait_ms=max(1000, wait_ms))
            except TransportError as exc:  # garbled or dropped: its lease may be lost with it
                if lease.cancelled:
                    return None
                log.warning("[RunPodServerless] streaming %s: %s", lease.label, exc)
                if not lease.suspect:
                    lease.suspect = True
                    self._rebalance()
                await anyio.sleep(self._protocol.poll_interval)
                continue
            except JobFailedError:
                if lease.cancelled:
                    return None  # withdrawn: the poll answered the job's end
                raise
            if lease.cancelled:
                return None
            if state is not JobStatus.IN_QUEUE:
                self._seen_running(lease)
            if handle is not None:
                return handle
            if self._clock() >= late_at - 0.001:
                self._rebalance()  # overdue: no longer counted as a coming seat
                if state is JobStatus.IN_QUEUE:
                    self._set_reason(lease, await self._diagnose())

    def _seen_running(self, lease: _Lease) -> None:
        """RunPod runs the lease job: a worker is assigned (and bills) and boots."""
        if lease.chart.state_id == "queued":
            lease.chart.send("assigned")
            lease.booting_since = self._clock()
            self._set_reason(lease, WaitReason.BOOTING)

    async def _diagnose_early(self, lease: _Lease) -> None:
        """A few seconds in, say whether the lease waits for a booting worker or for more."""
        await anyio.sleep(_EARLY_DIAGNOSIS_S)
        if lease.chart.state_id == "queued" and not lease.withdrawing and not self._closing:
            try:
                self._set_reason(lease, await self._diagnose())
            except OrchestratorError as exc:
                log.info("[RunPodServerless] /health for %s: %s", lease.label, exc)

    async def _diagnose(self) -> WaitReason:
        """Why jobs stay queued on this endpoint (one ``/health`` shared by every lease)."""
        now = self._clock()
        if self._health is None or now - self._health[0] > _HEALTH_MAX_AGE_S:
            before = self._health[1].workers.unhealthy if self._health else 0
            health = await self._protocol.client.health()
            self._health = (now, health, diagnose_queue(health, unhealthy_before=before))
        return self._health[2]

    def _late_after_s(self) -> float:
        """When a lease still waiting is late: well past the endpoint's expected cold start."""
        expected = self._idle.cold_start_s
        return max(expected * 1.25, expected + 20.0)

    async def _withdraw(self, lease: _Lease) -> bool:
        """Withdraw a lease no longer needed if it is still queued (or stalled: its lease
        output may be lost); True if it was."""
        assert lease.job is not None
        if not self._closing and not lease.suspect:
            job = await self._protocol.client.status(lease.job.id)
            if job.state is not JobStatus.IN_QUEUE:
                lease.withdrawing = False  # a worker bills for it already: keep it
                self._seen_running(lease)
                log.info("[RunPodServerless] %s already has a worker; kept", lease.label)
                return False
        lease.chart.send("release")
        if self._cancelled(lease, await self._protocol.release(lease.job.id)):
            lease.chart.send("ended")
            log.info("[RunPodServerless] %s withdrawn before it billed", lease.label)
        return True

    async def _hold(self, lease: _Lease) -> str:
        """Keep the warm worker until idle, retired or ended; returns the journal outcome."""
        async with anyio.create_task_group() as watchers:
            watchers.start_soon(self._watch_end, lease)
            outcome = await self._idle_loop(lease)
            watchers.cancel_scope.cancel()
        return outcome

    async def _idle_loop(self, lease: _Lease) -> str:
        assert lease.job is not None
        retire_at = (
            lease.requested_at
            + lease.terms.max_lease_seconds
            - self._generation_timeout
            - _RECYCLE_MARGIN_S
        )
        while True:
            now = self._clock()
            if lease.ended_by_worker:
                lease.chart.send("ended")
                log.info("[RunPodServerless] %s ended by its worker", lease.label)
                return "ended"
            if now >= retire_at:
                lease.retiring = True
            deadline = math.inf
            if lease.busy == 0:
                release_at = max(lease.idle_since + self._idle_window_of(lease), lease.keep_until)
                if self._floor_keeps(lease):
                    release_at = math.inf
                if lease.retiring or self._closing or now >= release_at:
                    await self._release(lease)
                    return "released"
                deadline = release_at
            deadline = min(deadline, retire_at) if not lease.retiring else deadline
            with anyio.move_on_after(max(0.0, deadline - now)):
                await lease.changed.wait()

    def _floor_keeps(self, lease: _Lease) -> bool:
        if self._floor == 0 or lease.retiring:
            return False
        ready = [other for other in self._leases if other.ready and other.live]
        return len(ready) <= self._floor

    async def _watch_end(self, lease: _Lease) -> None:
        """Long-poll the lease job so the pool notices the worker ending it (idle, max age)."""
        assert lease.job is not None
        while True:
            try:
                chunk = await self._protocol.client.stream(lease.job.id, wait_ms=_WARM_POLL_MS)
            except OrchestratorError as exc:
                log.warning("[RunPodServerless] watching %s: %s", lease.label, exc)
                await anyio.sleep(self._protocol.poll_interval * 5)
                continue
            if chunk.state.is_terminal:
                lease.ended_by_worker = True
                lease.poke()
                return

    async def _release(self, lease: _Lease) -> None:
        assert lease.job is not None
        lease.chart.send("release")
        with anyio.CancelScope(shield=True), anyio.move_on_after(self._release_timeout):
            self._cancelled(lease, await self._protocol.release(lease.job.id))
        if lease.cancelled:
            lease.chart.send("ended")
        log.info(
            "[RunPodServerless] %s released (worker %s)",
            lease.label,
            lease.handle.worker_id if lease.handle else "?",
        )

    def _cancelled(self, lease: _Lease, answer: Job | None) -> bool:
        """Note a cancel RunPod took, and the job's delay and execution times it reported."""
        if answer is None:
            return False
        lease.cancelled = True
        if lease.root is not None:
            lease.root.set_attributes(
                span_attributes(
                    {
                        "runpod.delay_ms": answer.delay_time,
                        "runpod.execution_ms": answer.execution_time,
                    },
                    prefix="swarmpod.",
                )
            )
        return True

    async def _end(self, lease: _Lease, outcome: str, failure: BaseException | None) -> None:
        """The lease is over: cancel a job that may still bill, close the journal, re-plan."""
        job = lease.job
        if lease.live and job is not None and not lease.cancelled and not lease.ended_by_worker:
            with anyio.move_on_after(self._release_timeout):
                self._cancelled(lease, await self._protocol.release(job.id))
        if lease.live:
            lease.chart.send("lose")
        if lease.bill is not None:  # a lease never accepted (no job) cost nothing
            lease.bill.stop(
                self._clock() if job is not None else lease.requested_at,
                ended_by_itself=lease.ended_by_worker or not lease.cancelled,
                expected_boot_s=self._idle.cold_start_s,
            )
        self._end_trace(lease, failure)
        if failure is not None:
            self._lost(lease, failure)
        if self._journal is not None and lease.entry is not None:
            settled = (job is None and not lease.unknown_job) or lease.cancelled
            settled = settled or lease.ended_by_worker
            if settled:
                self._journal.close(lease.entry, outcome)
            else:
                log.warning(
                    "[RunPodServerless] %s could not be cancelled (or its /run answer was "
                    "lost); the journal keeps it open so the next start deals with it",
                    lease.label,
                )
        self._leases.remove(lease)
        self._poke_all()
        if not any(other.live for other in self._leases):
            self._all_ended.set()
        self._rebalance()

    def _lost(self, lease: _Lease, failure: BaseException) -> None:
        if isinstance(failure, ProtocolMismatchError):
            self._mismatch = failure
            waiters, self._waiters = list(self._waiters), deque()
            for waiter in waiters:
                waiter.failure = failure
                waiter.served.set()
            return
        log.warning("[RunPodServerless] %s lost: %s", lease.label, failure)
        if lease.ready or not self._waiters or isinstance(failure, WorkerNotReadyError):
            return  # a lease that timed out is replaced for those who still wait
        # The request made for the first in line failed: that generation hears why.
        waiter = self._waiters.popleft()
        waiter.failure = failure
        waiter.served.set()


def _surely_not_created(failure: OrchestratorError) -> bool:
    """Whether a failed ``/run`` surely created no job (RunPod refused or did not process it)."""
    status = failure.status if isinstance(failure, RunPodError) else None
    return status is not None and (400 <= status < 500 or status in (502, 503, 504))

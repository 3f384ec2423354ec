"""The pool: the workers of one endpoint and key, shared by every generation, on one protocol.

A generation takes a free seat on a warm worker at once (:meth:`WorkerPool.try_take`), or
waits in line (:meth:`WorkerPool.acquire`) while the pool asks for workers, up to
``MaxWorkers``. A v2 worker (a lease) runs as many generations at once as its SwarmUI's
backends allow (``max_usages``); a v1 worker (wake-up and keepalive) is one per endpoint and key
and every generation joins it. A worker coming that nobody needs any more is withdrawn while
still queued; a free worker is released after the idle window, or kept while a prewarm floor
asks for it.

The pool is glue: its :class:`~orchestrator.workers._matcher.SeatMatcher` decides (pure, no
I/O), and each worker is driven by its own :class:`~orchestrator.workers._runner.WorkerRunner`
task inside the pool's task group, which does the I/O and sends the outcomes into the worker's
chart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import anyio
import anyio.abc

from statecharts import WorkerChart

from ..errors import OrchestratorClosingError, ProtocolMismatchError
from ..secrets import Secret
from ._drivers import driver_for
from ._handle import Seat
from ._idle import IdleWindow
from ._journal import LeaseJournal
from ._matcher import Plan, SeatMatcher, WorkerSlot
from ._observer import NO_OBSERVER, ObserveWorker, WorkerFacts
from ._pool_parts import QueueDiagnosis, lease_terms
from ._pool_parts import Waiter as _Waiter
from ._runner import RunnerTimes, SwarmFactory, WorkerRunner
from ._v1 import V1Protocol
from ._v2 import LeaseTerms, V2Protocol
from ._waiting import WaitingCallback, WaitReason

__all__ = ["PoolStatus", "WorkerPool"]

log = logging.getLogger("swarmpod.workers")

_CLOSE_MARGIN_S: Final = 5.0
# A worker ready sooner than this after its request was already up: no start was measured.
_NO_START_S: Final = 1.0


@dataclass(frozen=True)
class PoolStatus:
    """What the pool holds right now.

    Attributes:
        warm: workers ready (free or busy).
        busy: generations running on them.
        free_seats: seats a new generation could take at once.
        booting: workers asked for and not ready yet (requested, queued, booting, loading).
        waiting: generations in line for a seat.
        floor: workers the prewarm floor keeps.
    """

    warm: int
    busy: int
    free_seats: int
    booting: int
    waiting: int
    floor: int


class WorkerPool:
    """The workers of one endpoint and key on one protocol, and the generations waiting.

    Args:
        protocol: the worker protocol the workers are held with: leases (v2), or wake-up and
            keepalive (v1).
        key: the RunPod key the workers are held with (journalled by fingerprint only).
        endpoint_id: the endpoint (journal, logs, observers).
        idle: the endpoint's idle window (shared with its other pools).
        max_workers: the most workers held at once (v1 holds one in any case).
        times: the runners' deadlines.
        swarm_for: a SwarmUI client for a handed-over worker.
        journal: where each worker's job is written before it is requested (None: nowhere).
        probing: the endpoint's protocol is not known yet (``auto``): one request at a time
            until a worker was handed over, so a v1 endpoint never gets a second worker woken
            by lease probes.
        on_confirmed: told the protocol once a worker was handed over (to remember it).
        observe: makes each worker's observer (tracing, cost); default: nothing observed.
    """

    def __init__(
        self,
        protocol: V1Protocol | V2Protocol,
        *,
        key: Secret,
        endpoint_id: str,
        idle: IdleWindow,
        max_workers: int,
        times: RunnerTimes,
        swarm_for: SwarmFactory,
        journal: LeaseJournal | None = None,
        probing: bool = False,
        on_confirmed: Callable[[str], None] | None = None,
        observe: ObserveWorker | None = None,
    ) -> None:
        self._driver = driver = driver_for(protocol)
        self._key = key
        self._endpoint_id = endpoint_id
        self._idle = idle
        self._times = times
        self._swarm_for = swarm_for
        self._journal = journal
        self._on_confirmed = on_confirmed
        self._observe = observe
        shared = driver.seats is not None
        self._matcher: SeatMatcher[_Waiter] = SeatMatcher(
            idle=idle,
            max_workers=1 if shared else max_workers,
            shared=shared,
            probing=probing,
        )
        self._runners: dict[int, WorkerRunner] = {}
        self._numbers = 0
        self._mismatch: ProtocolMismatchError | None = None
        self._tasks: anyio.abc.TaskGroup | None = None
        self._stopped = anyio.Event()
        self._all_ended = anyio.Event()
        self._all_ended.set()
        self._health = QueueDiagnosis()
        self._review_wake = anyio.Event()

    def __repr__(self) -> str:
        status = self.status()
        return (
            f"WorkerPool(protocol={self.protocol!r}, endpoint_id={self._endpoint_id!r}, "
            f"key={self._key.fingerprint}, warm={status.warm}, booting={status.booting}, "
            f"waiting={status.waiting})"
        )

    @property
    def protocol(self) -> str:
        """The worker protocol this pool holds workers with (``v1`` or ``v2``)."""
        return self._driver.name

    @property
    def mismatch(self) -> ProtocolMismatchError | None:
        """Set once a worker showed the endpoint speaks another protocol (``auto``)."""
        return self._mismatch

    @property
    def closing(self) -> bool:
        """The pool is shutting down."""
        return self._matcher.closing

    # --- the pool's own task group ----------------------------------------------------------

    async def serve(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Run the pool's task group (one runner task per worker) until :meth:`close`."""
        async with anyio.create_task_group() as tasks:
            self._tasks = tasks
            tasks.start_soon(self._review)
            task_status.started()
            await self._stopped.wait()
            tasks.cancel_scope.cancel()
        self._tasks = None

    async def _review(self) -> None:
        """Re-plan when time alone may change the plan (a generation becomes late while others
        wait behind it): no event would tell the matcher."""
        while True:
            wake = self._review_wake = anyio.Event()
            now = anyio.current_time()
            with anyio.move_on_after(self._matcher.review_at(now) - now):
                await wake.wait()
            if not wake.is_set():
                self.changed()

    # --- what generations call ----------------------------------------------------------------

    def owns(self, seat: Seat) -> bool:
        """Whether ``seat`` came from this pool."""
        return isinstance(seat.token, WorkerSlot) and seat.token.number in self._runners

    def try_take(self) -> Seat | None:
        """A seat on a free warm worker at once, or None (also when others wait in line)."""
        slot = self._matcher.take_free()
        if slot is None:
            return None
        self._matcher.took(slot, anyio.current_time())
        return self._seat(slot, cold=False)

    async def acquire(self, report: WaitingCallback) -> Seat:
        """Wait in line for a seat, asking for workers for the line; the caller bounds it.

        Raises:
            ProtocolMismatchError: the endpoint's workers speak another protocol.
            OrchestratorClosingError: the pool shuts down.
            OrchestratorError: the worker asked for this generation failed.
        """
        if self._mismatch is not None:
            raise self._mismatch.again() from self._mismatch
        if self.closing:
            raise OrchestratorClosingError()
        waiter = _Waiter(report)
        self._carry_out(self._matcher.arrive(waiter, anyio.current_time()))
        if not waiter.served.is_set():
            waiter.tell(self._matcher.told or self._matcher.reason())
        try:
            await waiter.served.wait()
        except BaseException:
            with anyio.CancelScope(shield=True):
                if waiter.seat is not None:
                    await self.give_back(waiter.seat)
                elif not waiter.served.is_set():
                    plan = self._matcher.leave(waiter, anyio.current_time())
                    self._carry_out(plan)
                    await self._settled(plan)  # its request withdrawn before it returns
            raise
        return waiter.outcome()

    async def give_back(self, seat: Seat, *, broken: bool = False) -> None:
        """Leave the seat; ``broken`` retires the worker (it stopped answering)."""
        slot = seat.token
        assert isinstance(slot, WorkerSlot), "a seat from a pool"
        if broken and slot.chart.is_warm:
            slot.chart.send("retire")
            log.warning(
                "[RunPodServerless] worker %s stopped answering; %s is released",
                seat.handle.worker_id,
                slot.label,
            )
        now = anyio.current_time()
        self._carry_out(self._matcher.freed(slot, seat.taken_at, now, finished=not broken))
        self._poke_all()
        runner = self._runners.get(slot.number)
        if runner is not None and slot.busy == 0 and self._releases_now(slot, now):
            await runner.ended.wait()  # released at once: giving it back includes its end

    def _releases_now(self, slot: WorkerSlot, now: float) -> bool:
        if slot.chart.state_id == "retiring":
            return True
        return slot.chart.state_id == "idle" and self._matcher.release_at(slot) <= now

    # --- prewarm and shutdown ---------------------------------------------------------------

    def prewarm(self, workers: int, *, hold_s: float | None = None) -> int:
        """Make sure ``workers`` workers are warm or coming; returns how many were asked for.

        A prewarmed worker stays warm at least ``hold_s`` (default: the idle window) after it
        is ready, then follows the idle window like any other.
        """
        hold = self._idle.seconds if hold_s is None else hold_s
        live = sum(
            1 for slot in self._matcher.workers if slot.live and slot.chart.state_id != "retiring"
        )
        asked = max(0, min(workers, live + self._matcher.room()) - live)
        for _ in range(asked):
            self._start_worker(hold_s=hold)
        return asked

    def set_floor(self, workers: int) -> None:
        """Keep at least ``workers`` workers (a prewarm schedule); 0 ends the floor."""
        self._carry_out(self._matcher.set_floor(workers, anyio.current_time()))
        self._poke_all()

    async def close(self) -> None:
        """Release every worker (withdraw queued ones), wait until they ended, bounded, and
        stop the pool's task group. Generations still in line hear OrchestratorClosingError."""
        for waiter in self._matcher.close():
            waiter.failure = OrchestratorClosingError()
            waiter.served.set()
        for slot in self._matcher.workers:
            if slot.chart.state_id in ("queued", "booting", "stalled", "loading"):
                slot.chart.send("release")  # shutting down: no /status check first
        self._poke_all()
        with anyio.move_on_after(self._times.release + _CLOSE_MARGIN_S):
            await self._all_ended.wait()
        for slot in self._matcher.workers:
            if slot.live:
                log.warning("[RunPodServerless] %s did not end at shutdown", slot.label)
        self._stopped.set()

    def status(self) -> PoolStatus:
        """What the pool holds right now."""
        workers = self._matcher.workers
        warm = [slot for slot in workers if slot.chart.is_warm or slot.chart.state_id == "retiring"]
        coming = ("requested", "queued", "booting", "stalled", "loading", "withdrawing")
        return PoolStatus(
            warm=len(warm),
            busy=sum(slot.busy for slot in warm),
            free_seats=sum(slot.free for slot in warm),
            booting=sum(1 for slot in workers if slot.chart.state_id in coming),
            waiting=self._matcher.waiting,
            floor=self._matcher.floor,
        )

    # --- what runners call ------------------------------------------------------------------

    def changed(self) -> None:
        """A worker's chart or reason changed: decide again."""
        self._carry_out(self._matcher.changed(anyio.current_time()))

    def ready(self, slot: WorkerSlot, capacity: int, now: float) -> None:
        """A worker is warm: its cold start is measured, the line is seated.

        A start under a second took a worker that was already up (one the endpoint still kept
        idle, e.g. just after a release): it is no start, and telling it to the idle window
        would teach it that restarts cost nothing.
        """
        if now - slot.requested_at >= _NO_START_S:
            self._idle.observe_cold_start(now - slot.requested_at)
        runner = self._runners[slot.number]
        log.info(
            "[RunPodServerless] %s: worker %s ready after %.1f s (%d at once)",
            slot.label,
            runner.handle.worker_id if runner.handle else "?",
            now - slot.requested_at,
            capacity,
        )
        self._carry_out(self._matcher.ready(slot, capacity, now))
        self._poke_all()

    def gone(self, slot: WorkerSlot, failure: Exception | None) -> None:
        """A worker's life ended (released or lost)."""
        if isinstance(failure, ProtocolMismatchError):
            self._mismatch = failure
        self._runners.pop(slot.number, None)
        self._carry_out(self._matcher.gone(slot, failure, anyio.current_time()))
        if not any(other.live for other in self._matcher.workers):
            self._all_ended.set()
        self._poke_all()

    def confirmed(self, protocol: str) -> None:
        """A worker was handed over: the endpoint speaks ``protocol``."""
        if self._matcher.probing:
            self._matcher.probing = False
            if self._on_confirmed is not None:
                self._on_confirmed(protocol)

    def release_at(self, slot: WorkerSlot) -> float:
        """When a free warm worker is released (the matcher's rule)."""
        return self._matcher.release_at(slot)

    async def may_release(self, slot: WorkerSlot) -> bool:
        """Yes: in one process, the matcher's seats are all the seats there are."""
        return True

    def late_after_s(self) -> float:
        """How long after its request a coming worker is late (the matcher's rule)."""
        return self._matcher.late_after_s()

    @property
    def expected_cold_start_s(self) -> float:
        """The endpoint's expected cold start."""
        return self._idle.cold_start_s

    async def diagnose(self) -> WaitReason:
        """Why jobs stay queued on this endpoint (one ``/health`` shared by every worker)."""
        return await self._health.diagnose(self._driver.client)

    # --- carrying out the matcher's plans ------------------------------------------------

    def _carry_out(self, plan: Plan[_Waiter]) -> None:
        self._review_wake.set()
        for waiter, slot, cold in plan.seated:
            waiter.seat = self._seat(slot, cold=cold)
            waiter.served.set()
        for waiter, failure in plan.failed:
            waiter.failure = failure
            waiter.served.set()
        for _ in range(plan.request):
            self._start_worker(hold_s=0.0)
        for slot in (*plan.withdraw, *plan.give_up):
            runner = self._runners.get(slot.number)
            if runner is not None:
                runner.poke()
        if plan.tell is not None:
            for waiter in self._matcher.line():
                waiter.tell(plan.tell)

    async def _settled(self, plan: Plan[_Waiter]) -> None:
        """Wait (bounded) until the withdrawals and give-ups of ``plan`` were carried out."""
        with anyio.move_on_after(self._times.release):
            for slot in (*plan.withdraw, *plan.give_up):
                runner = self._runners.get(slot.number)
                if runner is not None:
                    await runner.until_decided()

    def _seat(self, slot: WorkerSlot, *, cold: bool) -> Seat:
        runner = self._runners[slot.number]
        assert runner.handle is not None, "a warm worker was handed over"
        return Seat(
            handle=runner.handle,
            cold=cold,
            job_ids=(slot.job_id,) if cold and slot.job_id else (),
            delay_ms=runner.handle.receipt.delay_ms if cold else None,
            boot_s=slot.warm_at - slot.requested_at if cold else None,
            session_id=slot.session_id,
            checked=True,
            token=slot,
            taken_at=slot.taken_at[-1] if slot.taken_at else anyio.current_time(),
            observer=runner.observer,
            ended=runner.ended,
        )

    def _start_worker(self, *, hold_s: float) -> None:
        if self._tasks is None:
            raise OrchestratorClosingError("the pool is not running")
        self._numbers += 1
        now = anyio.current_time()
        facts = WorkerFacts(self._endpoint_id, self._driver.name, self._numbers, now)
        observer = self._observe(facts) if self._observe is not None else NO_OBSERVER
        chart = WorkerChart(listeners=[observer])
        slot = WorkerSlot(self._numbers, chart, requested_at=now, hold_s=hold_s)
        runner = WorkerRunner(
            slot,
            self._driver,
            self._terms(hold_s),
            self,
            observer=observer,
            journal=self._journal,
            key=self._key,
            endpoint_id=self._endpoint_id,
            swarm_for=self._swarm_for,
            times=self._times,
        )
        self._runners[slot.number] = runner
        self._matcher.added(slot)
        self._all_ended = anyio.Event()
        self._tasks.start_soon(runner.run)

    def _terms(self, hold_s: float) -> LeaseTerms:
        """What a lease asks of its worker: it ends itself only as a safety net, after our
        idle window (or the prewarm hold, or the floor) plus a margin; it takes generations
        for at least an hour before it retires, whatever GenerationTimeoutSec."""
        return lease_terms(
            idle_window_s=self._idle.seconds,
            generation_s=self._times.generation,
            hold_s=hold_s,
            floor=self._matcher.floor,
        )

    def _poke_all(self) -> None:
        for runner in self._runners.values():
            runner.poke()

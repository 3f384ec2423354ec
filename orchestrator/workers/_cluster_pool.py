"""The warm pool several ``swarmpod serve`` replicas share through PostgreSQL.

Design (the issue "Beyond one process"): the pool is a table. Each worker is a row of
``pool_workers`` (its chart's state, capacity and seats taken, its URL and gateway token
sealed with the master key, the replica that owns it); each seat taken is a row of
``pool_seats`` (whose it is); ``pool_demand`` says how many generations wait at each replica.

- **Seats.** A generation at any replica takes a seat on any warm worker of its pool with one
  atomic statement (``PoolTable.take``) and forwards to the worker directly (its URL and
  token from the row). It gives the seat back with another. There is no free seat to take
  locally: :meth:`ClusterPool.try_take` always says no, :meth:`ClusterPool.acquire` asks the
  table first (a warm worker's seat comes back in one round trip).
- **Waiting.** Generations wait in this replica's line (first come, first served here). Every
  write to a row is announced on ``LISTEN``/``NOTIFY`` (``PoolBus``); each announcement of this
  pool wakes the replica's one seater, which takes seats for the head of its line until none
  is free. No polling.
- **Scaling.** When the line finds no seat, the replica asks for workers in a transaction that
  holds the endpoint's advisory lock: the waiting generations of every replica, minus the free
  seats and the seats on their way, in workers, never past the endpoint's cluster-wide
  ``MaxWorkers`` (``PoolTable.request``). The rows it makes are its own: it runs them.
- **Owning.** The owner runs each of its workers with the engine's own
  :class:`~orchestrator.workers._runner.WorkerRunner` (request, hand-over, SwarmUI ready,
  watch, release, journal, bill), writing every chart change to the row. Seats taken by other
  replicas reach the owner's view of its worker as announcements, so its idle window counts
  from the last seat freed anywhere; the release itself is decided in the table
  (``PoolTable.claim_release``: only with no seat taken, and then no seat can be taken).
- **Replica death** (``_cluster_watch``): replicas heartbeat; a replica silent for 1.5 of its
  heartbeat intervals is dead. The first replica to see it claims each of its workers: a warm
  one is adopted (a :class:`~orchestrator.workers._cluster_runner.ClusterRunner` that starts
  warm: held, watched and released from then on by the adopter, its journal entry claimed
  with it); one not warm yet is cancelled. Its seats are dropped (its generations died with
  it). Claims are atomic: none is released twice. A replica stopping cleanly hands over the
  workers others still use.

On SQLite (one process), none of this exists: :class:`~orchestrator.workers.WorkerPool` is the
pool, unchanged.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import anyio
import anyio.abc
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from statecharts import WorkerChart

from ..errors import (
    DatabaseError,
    OrchestratorClosingError,
    WorkerNotReadyError,
)
from ..runpod import Job
from ..secrets import Secret
from ._cluster_bus import PoolBus, PoolNews
from ._cluster_runner import Adoption, ClusterRunner
from ._cluster_table import PoolTable, SeatTaken, WorkerRow
from ._drivers import Released, driver_for
from ._handle import Seat, WakeReceipt, WorkerHandle
from ._idle import IdleWindow, SurplusWindow
from ._journal import LeaseJournal
from ._matcher import WorkerSlot
from ._observer import NO_OBSERVER, ObserveWorker, WorkerFacts, WorkerObserver
from ._pool import PoolStatus
from ._pool_parts import QueueDiagnosis, lease_terms
from ._pool_parts import Waiter as _Waiter
from ._runner import RunnerTimes, SwarmFactory
from ._scaling import late_after
from ._v1 import V1Protocol
from ._v2 import LeaseTerms, V2Protocol
from ._waiting import Waiting, WaitingCallback, WaitReason

if TYPE_CHECKING:
    from ..accounts._master_key import MasterKey
    from ..store import PostgresStore

__all__ = ["ClusterPool"]

log = logging.getLogger("swarmpod.workers")

_CLOSE_MARGIN_S: Final = 5.0
# A seat freed here is taken by another replica's line within a notification's round trip: a
# worker is not surplus before this long (this replica does not see the others' lines).
_HANDOFF_S: Final = 0.5
_GENERATIONS_KEPT: Final = 20
# A take that found no seat while a warm worker had one raced another replica's take.
_RACED_RETRIES: Final = 5


@dataclass(frozen=True)
class _SeatRef:
    """What a cluster seat's ``token`` holds: the worker's row and the seat's row."""

    worker: int
    seat_id: int


class ClusterPool:
    """The shared pool of one endpoint and key: a Station, and the host of this replica's
    runners (see the module docstring).

    Args:
        protocol: the worker protocol (leases, or wake-up and keepalive).
        store: the PostgreSQL store.
        bus: the replica's announcements listener.
        master: seals each worker's gateway token and SwarmUI session in its row.
        key: the RunPod key the workers are held with.
        endpoint_id: the endpoint.
        idle: the endpoint's idle window.
        max_workers: the endpoint's MaxWorkers, for all replicas together.
        times: the runners' deadlines.
        swarm_for: a SwarmUI client for a handed-over worker.
        journal: the lease journal (in the same database).
        on_confirmed: told the protocol once a worker was handed over.
        observe: makes each worker's observer.
    """

    def __init__(
        self,
        protocol: V1Protocol | V2Protocol,
        *,
        store: PostgresStore,
        bus: PoolBus,
        master: MasterKey,
        key: Secret,
        endpoint_id: str,
        idle: IdleWindow,
        max_workers: int,
        times: RunnerTimes,
        swarm_for: SwarmFactory,
        journal: LeaseJournal | None,
        on_confirmed: Callable[[str], None] | None = None,
        observe: ObserveWorker | None = None,
    ) -> None:
        self._driver = driver = driver_for(protocol)
        self._store = store
        self._bus = bus
        self._master = master
        self._key = key
        self._endpoint_id = endpoint_id
        self._idle = idle
        self._max_workers = 1 if driver.seats is not None else max_workers
        self._surplus = SurplusWindow(idle, max_workers=self._max_workers, handoff_s=_HANDOFF_S)
        self._times = times
        self._swarm_for = swarm_for
        self._journal = journal
        self._on_confirmed = on_confirmed
        self._observe = observe
        assert journal is not None, "the shared pool journals every worker"
        self.table = PoolTable(
            journal.store,
            endpoint_id=endpoint_id,
            key_fingerprint=key.fingerprint,
            replica_id=journal.store.replica_id,
        )
        self._runners: dict[int, ClusterRunner] = {}
        self._written: dict[int, str] = {}
        self._view: dict[int, PoolNews] = {}
        self._line: deque[_Waiter] = deque()
        self._demand_told = 0
        self._capacity_estimate = driver.seats or 1
        self._generations: deque[float] = deque(maxlen=_GENERATIONS_KEPT)
        self._floor = 0
        self._closing = False
        self._wake = anyio.Event()
        self._writes: MemoryObjectSendStream[tuple[str, int, object]] | None = None
        self._pending_writes = 0
        self._writes_done = anyio.Event()
        self._writes_done.set()
        self._tasks: anyio.abc.TaskGroup | None = None
        self._stopped = anyio.Event()
        self._all_ended = anyio.Event()
        self._all_ended.set()
        self._health = QueueDiagnosis()
        self._remote_ended: dict[int, anyio.Event] = {}
        self._idle_at: dict[int, float] = {}  # warm workers with no seat: since when (loop)
        self._own_seats: dict[int, int] = {}  # seats this replica holds, per worker
        self._rescale = True

    def __repr__(self) -> str:
        return (
            f"ClusterPool(protocol={self.protocol!r}, endpoint_id={self._endpoint_id!r}, "
            f"key={self._key.fingerprint}, owned={len(self._runners)}, waiting={len(self._line)})"
        )

    # --- the Station -----------------------------------------------------------------------

    @property
    def protocol(self) -> str:
        """The worker protocol of the pool."""
        return self._driver.name

    @property
    def closing(self) -> bool:
        """This replica's side of the pool shuts down."""
        return self._closing

    def owns(self, seat: Seat) -> bool:
        """Whether ``seat`` came from this pool."""
        return isinstance(seat.token, _SeatRef) and seat.token.worker in self._view

    def try_take(self) -> Seat | None:
        """None: every seat of the shared pool is taken in its table (:meth:`acquire`)."""
        return None

    async def acquire(self, report: WaitingCallback) -> Seat:
        """A seat on a warm worker of the pool, any replica's; asking for workers when none
        is free (under the endpoint's MaxWorkers, for every replica together).

        Raises:
            OrchestratorClosingError: this replica shuts down.
            OrchestratorError: the worker asked for this generation failed.
        """
        if self._closing:
            raise OrchestratorClosingError()
        waiter = _Waiter(report, arrived=time.time())
        self._line.append(waiter)
        self._observe_demand()
        self._rescale = True
        self._poke_seater()
        try:
            await waiter.served.wait()
        except BaseException:
            with anyio.CancelScope(shield=True):
                if waiter in self._line:
                    self._line.remove(waiter)
                    self._observe_demand()
                    self._poke_seater()
                if waiter.seat is not None:
                    await self.give_back(waiter.seat)
            raise
        return waiter.outcome()

    async def give_back(self, seat: Seat, *, broken: bool = False) -> None:
        """Leave the seat (in the table); ``broken`` retires the worker everywhere."""
        ref = seat.token
        assert isinstance(ref, _SeatRef), "a seat from the shared pool"
        held = self._own_seats.get(ref.worker, 0) - 1
        if held > 0:
            self._own_seats[ref.worker] = held
        else:
            self._own_seats.pop(ref.worker, None)
        self._observe_demand()
        self._generations.append(max(0.0, anyio.current_time() - seat.taken_at))
        try:
            await self.table.give_back(ref.seat_id, retire=broken)
        except DatabaseError as exc:  # its replica's death (or ours) frees it anyway
            log.error("[RunPodServerless] giving a seat back: %s", exc)
        if broken:
            log.warning(
                "[RunPodServerless] worker %s stopped answering; it is retired",
                seat.handle.worker_id,
            )

    def prewarm(self, workers: int, *, hold_s: float | None = None) -> int:
        """Make sure ``workers`` workers are warm or coming, in the whole cluster; returns
        how many this replica asks for (the table has the last word, under the lock)."""
        hold = self._idle.seconds if hold_s is None else hold_s
        live = sum(1 for news in self._view.values() if news.state not in ("retiring", "draining"))
        asked = max(0, min(workers, self._max_workers) - live)
        if asked and self._tasks is not None:
            self._tasks.start_soon(self._request, asked, hold)
        return asked

    def set_floor(self, workers: int) -> None:
        """Keep at least ``workers`` workers in the cluster (a prewarm schedule)."""
        self._floor = min(max(0, workers), self._max_workers)
        if self._tasks is not None and self._floor:
            self._tasks.start_soon(self._request, 0, 0.0)
        self._rescale = True

    def status(self) -> PoolStatus:
        """The shared pool as this replica sees it (every replica's workers)."""
        views = list(self._view.values())
        warm = [v for v in views if v.state in ("idle", "busy", "retiring")]
        coming = ("requested", "queued", "booting", "stalled", "loading", "withdrawing")
        return PoolStatus(
            warm=len(warm),
            busy=sum(v.busy for v in warm),
            free_seats=sum(max(0, v.capacity - v.busy) for v in warm if v.state != "retiring"),
            booting=sum(1 for v in views if v.state in coming),
            waiting=len(self._line),
            floor=self._floor,
        )

    async def serve(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Run this replica's side of the pool (its runners, its seater, its writer) until
        :meth:`close`."""
        send, receive = anyio.create_memory_object_stream[tuple[str, int, object]](10_000)
        self._writes = send
        self._bus.subscribe(self.table.key, self)
        try:
            async with anyio.create_task_group() as tasks:
                self._tasks = tasks
                tasks.start_soon(self._write_loop, receive)
                await self._load_view()
                tasks.start_soon(self._seat_loop)
                tasks.start_soon(self._when_evicted)
                task_status.started()
                await self._stopped.wait()
                tasks.cancel_scope.cancel()
        finally:
            self._bus.unsubscribe(self.table.key, self)
            self._writes = None
            send.close()
            self._tasks = None

    async def close(self) -> None:
        """Stop this replica's side: waiters hear OrchestratorClosingError; its workers that
        other replicas still use are handed over, the others released."""
        self._closing = True
        self._floor = 0
        for waiter in list(self._line):
            waiter.failure = OrchestratorClosingError()
            waiter.served.set()
        self._line.clear()
        await self._tell_demand()
        for runner in list(self._runners.values()):
            chart = runner.slot.chart
            if chart.is_warm and self.others_seated(runner.slot):
                log.info("[RunPodServerless] %s handed over to another replica", runner.slot.label)
                runner.hand_over()
            elif chart.state_id in ("queued", "booting", "stalled", "loading"):
                chart.send("release")
            runner.poke()
        with anyio.move_on_after(self._times.release + _CLOSE_MARGIN_S):
            await self._all_ended.wait()
        for runner in self._runners.values():
            log.warning("[RunPodServerless] %s did not end at shutdown", runner.slot.label)
        self._stopped.set()

    async def _when_evicted(self) -> None:
        """Another replica declared this one dead (its heartbeat came too late) and took its
        workers over: stop driving them, take no more generations."""
        await self._store.evicted.wait()
        log.error(
            "[RunPodServerless] this replica was declared dead by another; its workers are "
            "the other's now: restart it"
        )
        self._closing = True
        for waiter in list(self._line):
            waiter.failure = OrchestratorClosingError()
            waiter.served.set()
        self._line.clear()
        for runner in list(self._runners.values()):
            runner.hand_over()

    # --- the runners' host (RunnerHost) ---------------------------------------------------

    def changed(self) -> None:
        """A chart of this replica's workers changed: its row says so."""
        for number, runner in self._runners.items():
            state = runner.slot.chart.state_id
            if self._written.get(number) != state and state not in ("released", "lost"):
                self._written[number] = state
                job_id = runner.slot.job_id
                self._write("state", number, (state, job_id))
        self._poke_seater()

    def confirmed(self, protocol: str) -> None:
        """A worker was handed over: remember the protocol."""
        if self._on_confirmed is not None:
            self._on_confirmed(protocol)

    def ready(self, slot: WorkerSlot, capacity: int, now: float) -> None:
        """One of this replica's workers is warm: its seats open to every replica."""
        runner = self._runners[slot.number]
        slot.capacity = max(1, capacity)
        slot.warm_at = slot.idle_since = now
        self._capacity_estimate = slot.capacity
        if runner.adoption is not None:
            mirrored = max(0, runner.adoption.busy)
            slot.idle_since = now - runner.adoption.idle_for_s
            slot.taken_at = [now] * mirrored
            if mirrored and slot.chart.state_id == "idle":
                slot.chart.send("take")
            self._written[slot.number] = slot.chart.state_id
            return
        if now - slot.requested_at >= 1.0:
            self._idle.observe_cold_start(now - slot.requested_at)
        handle = runner.handle
        assert handle is not None
        log.info(
            "[RunPodServerless] %s: worker %s ready after %.1f s (%d at once), shared",
            slot.label,
            handle.worker_id,
            now - slot.requested_at,
            capacity,
        )
        self._written[slot.number] = slot.chart.state_id
        self._write("warm", slot.number, (slot.capacity, handle, slot.session_id))

    def gone(self, slot: WorkerSlot, failure: Exception | None) -> None:
        """One of this replica's workers ended (or was handed over)."""
        self._runners.pop(slot.number, None)
        self._written.pop(slot.number, None)
        never_warm = failure is not None and slot.warm_at == math.inf
        if never_warm and not isinstance(failure, WorkerNotReadyError):
            for _ in range(self._capacity_estimate):  # the waiters it was asked for
                if not self._line:
                    break
                waiter = self._line.popleft()
                waiter.failure = failure
                waiter.served.set()
        if not self._runners:
            self._all_ended.set()
        self._poke_seater()

    async def forget(self, slot: WorkerSlot) -> None:
        """One of this replica's workers ended: its row goes (every replica hears it)."""
        try:
            await self.table.remove(slot.number)
        except DatabaseError as exc:  # the row stays: a replica that sees this one dead cleans it
            log.error("[RunPodServerless] removing %s from the shared pool: %s", slot.label, exc)

    def others_seated(self, slot: WorkerSlot) -> bool:
        """Whether other replicas hold seats on one of this replica's workers now."""
        view = self._view.get(slot.number)
        return view is not None and view.busy > self._own_seats.get(slot.number, 0)

    def late_after_s(self) -> float:
        """How long after its request a coming worker is late."""
        return late_after(self._idle.cold_start_s)

    @property
    def expected_cold_start_s(self) -> float:
        """The endpoint's expected cold start."""
        return self._idle.cold_start_s

    def release_at(self, slot: WorkerSlot) -> float:
        """The idle window after the last seat freed on any replica; shorter for a worker
        idling beside a more recently used one; never under a prewarm hold or a floor."""
        if self._closing:
            return -math.inf
        warm = [v for v in self._view.values() if v.state in ("idle", "busy")]
        if self._floor and len(warm) <= self._floor:
            return math.inf
        window = self._idle.seconds
        # the keeper: the idle worker of the whole pool used last; the others are surplus
        keeper = max(self._idle_at.items(), key=lambda item: (item[1], item[0]), default=None)
        if keeper is not None and keeper[0] != slot.number and slot.number in self._idle_at:
            window = min(window, self._surplus.seconds)
        return max(slot.idle_since + window, slot.warm_at + slot.hold_s)

    async def may_release(self, slot: WorkerSlot) -> bool:
        """Release only if no replica holds a seat on it: decided in the table, after this
        replica's own writes landed."""
        await self._flushed()
        retiring = slot.chart.state_id == "retiring"
        try:
            claimed = await self.table.claim_release(slot.number, retiring=retiring)
        except DatabaseError as exc:
            log.error("[RunPodServerless] releasing %s: %s", slot.label, exc)
            claimed = False
        if not claimed:
            row = await self._row_or_none(slot.number)
            now = anyio.current_time()
            if row is not None:
                self._mirror_seats(slot, row.busy, now)
            else:
                slot.idle_since = now  # no answer: try again after a window
        return claimed

    async def diagnose(self) -> WaitReason:
        """Why jobs stay queued (one ``/health`` shared by this replica's workers)."""
        return await self._health.diagnose(self._driver.client)

    # --- announcements (ClusterListener) --------------------------------------------------

    def heard(self, news: PoolNews) -> None:
        """A row of the pool changed or went: the view follows; the seater looks again; an
        owned worker's seats are mirrored for its runner."""
        now = anyio.current_time()
        if news.event == "gone" or news.busy or news.state not in ("idle", "busy"):
            self._idle_at.pop(news.worker, None)
        elif news.worker not in self._idle_at:
            self._idle_at[news.worker] = now
            for worker in self._idle_at:  # a new keeper: the others idling are surplus now
                if worker != news.worker and (runner := self._runners.get(worker)) is not None:
                    runner.poke()
        if news.event == "gone":
            self._view.pop(news.worker, None)
            ended = self._remote_ended.pop(news.worker, None)
            if ended is not None:
                ended.set()
            self._rescale = True  # a worker less: the line may need another
        else:
            self._view[news.worker] = news
        self._observe_demand()
        runner = self._runners.get(news.worker)
        if runner is not None and news.event != "gone":
            slot = runner.slot
            self._mirror_seats(slot, news.busy, now)
            if news.state == "retiring" and slot.chart.is_warm:
                slot.chart.send("retire")
                self._written[slot.number] = "retiring"
            runner.poke()
        self._poke_seater()

    def resync(self) -> None:
        """Announcements were missed: read the pool again."""
        self._rescale = True
        if self._tasks is not None:
            self._tasks.start_soon(self._load_view)

    # --- adoption -------------------------------------------------------------------------

    def adopt(
        self, row: WorkerRow, *, age_s: float, idle_for_s: float, journal_entry: int | None
    ) -> bool:
        """Run a warm worker another replica requested (it died, or handed it over); the
        row is this replica's already. False when its sealed token does not open."""
        handle = self._handle_of(row)
        if handle is None or row.job_id is None or self._tasks is None:
            return False
        adoption = Adoption(
            handle=handle,
            job_id=row.job_id,
            capacity=row.capacity,
            busy=row.busy,
            idle_for_s=idle_for_s,
            journal_entry=journal_entry,
        )
        self._start(
            row.id, requested_at=anyio.current_time() - age_s, hold_s=0.0, adoption=adoption
        )
        log.info(
            "[RunPodServerless] adopted worker %s (%d of %d seats taken)",
            handle.worker_id,
            row.busy,
            row.capacity,
        )
        return True

    async def journal_job(self, job_id: str) -> int | None:
        """A journal entry, this replica's, for an adopted worker's job that had none."""
        if self._journal is None:
            return None
        entry = await self._journal.begin(self._endpoint_id, self._driver.name, self._key)
        await self._journal.attach(entry, job_id)
        return entry

    async def job_ended(self, job_id: str) -> bool:
        """Whether RunPod says the job ended (cancelled, completed, failed)."""
        return (await self._driver.client.status(job_id)).state.is_terminal

    async def release_job(self, job: Job, handle: WorkerHandle) -> Released:
        """Cancel a worker's job (a dead replica's worker that is not adopted)."""
        return await self._driver.release(job, handle)

    # --- internals ------------------------------------------------------------------------

    def _observe_demand(self) -> None:
        """The workers needed at once: the seats taken (this replica's own count until the
        table's news of them arrives) and this replica's line."""
        views = self._view
        seats = sum(
            max(views[w].busy if w in views else 0, self._own_seats.get(w, 0))
            for w in views.keys() | self._own_seats.keys()
        )
        seats += len(self._line)
        self._surplus.observe_demand(-(-seats // self._capacity_estimate), anyio.current_time())

    def _poke_seater(self) -> None:
        event, self._wake = self._wake, anyio.Event()
        event.set()

    async def _seat_loop(self) -> None:
        """The replica's one seater: seats the head of the line while seats are free; when
        none is, asks for workers (once per wake), and sleeps until the next announcement."""
        while True:
            wake = self._wake
            if self._line and not self._closing:
                try:
                    await self._seat_line()
                except DatabaseError as exc:
                    log.error("[RunPodServerless] shared pool: %s", exc)
                    with anyio.move_on_after(1.0):
                        await wake.wait()
                    continue
            await self._tell_demand()
            await wake.wait()

    async def _seat_line(self) -> None:
        raced = 0
        while self._line:
            taken = await self.table.take()
            if taken is None:
                if raced < _RACED_RETRIES and await self.table.seats_free_somewhere():
                    raced += 1
                    await anyio.lowlevel.checkpoint()
                    continue
                break
            raced = 0
            waiter = self._line.popleft() if self._line else None
            if waiter is None:
                await self.table.give_back(taken.seat_id)
                break
            waiter.seat = self._seat(taken, waiter)
            self._own_seats[taken.row.id] = self._own_seats.get(taken.row.id, 0) + 1
            waiter.served.set()
        if not self._line:
            return
        await self._tell_demand()
        made = 0
        if self._rescale:  # a newcomer, a worker gone, missed news: the shortfall may differ
            self._rescale = False
            made = await self._request(0, 0.0)
        reason = WaitReason.REQUESTING if made else self._reason()
        for waiter in self._line:
            waiter.tell(Waiting(reason))

    async def _request(self, wanted: int, hold_s: float) -> int:
        """Ask the table for the workers the cluster needs; run the ones it made here."""
        if self._closing or self._tasks is None:
            return 0
        rows = await self.table.request(
            wanted,
            demand_fallback=len(self._line),
            max_workers=self._max_workers,
            capacity=self._capacity_estimate,
            protocol=self._driver.name,
            hold_s=hold_s,
            floor=self._floor,
            ready_in_s=self._idle.cold_start_s,
            generation_s=(
                sum(self._generations) / len(self._generations) if self._generations else None
            ),
        )
        for row in rows:
            self._start_worker(row, hold_s=row.hold_s)
        return len(rows)

    def _reason(self) -> WaitReason:
        coming = [v for v in self._view.values() if v.state in ("requested", "queued")]
        booting = [v for v in self._view.values() if v.state in ("booting", "loading")]
        if booting:
            return WaitReason.BOOTING
        if coming:
            return WaitReason.QUEUED
        return WaitReason.WORKERS_BUSY

    async def _tell_demand(self) -> None:
        waiting = len(self._line)
        if waiting == self._demand_told:
            return
        try:
            await self.table.set_demand(waiting)
            self._demand_told = waiting
        except DatabaseError as exc:
            log.warning("[RunPodServerless] shared pool demand: %s", exc)

    def _seat(self, taken: SeatTaken, waiter: _Waiter) -> Seat:
        row = taken.row
        runner = self._runners.get(row.id)
        handle = runner.handle if runner is not None else None
        if handle is None:
            handle = self._handle_of(row)
        assert handle is not None, "a warm row has its sealed token"
        # cold: it waited for this worker's boot, and is among the first it seats (no seat
        # was freed on it since it became warm)
        cold = (
            row.warm_at is not None
            and row.warm_at.timestamp() > waiter.arrived
            and row.idle_since == row.warm_at
        )
        ended = runner.ended if runner is not None else self._ended_event(row.id)
        session_id = handle.receipt.session_id
        return Seat(
            handle=handle,
            cold=cold,
            job_ids=(row.job_id,) if cold and row.job_id else (),
            delay_ms=handle.receipt.delay_ms if cold else None,
            boot_s=None,
            session_id=session_id,
            checked=session_id is not None,
            token=_SeatRef(row.id, taken.seat_id),
            taken_at=anyio.current_time(),
            observer=runner.observer if runner is not None else NO_OBSERVER,
            ended=ended,
        )

    def _ended_event(self, worker: int) -> anyio.Event:
        """Set when another replica's worker's row goes (released, or lost)."""
        ended = self._remote_ended.get(worker)
        if ended is None:
            ended = self._remote_ended[worker] = anyio.Event()
            if worker not in self._view:  # gone already
                ended.set()
        return ended

    def _handle_of(self, row: WorkerRow) -> WorkerHandle | None:
        if row.sealed is None or row.public_url is None or row.worker_id is None:
            return None
        plain = self._master.decrypt(row.sealed)
        if plain is None:
            log.error(
                "[RunPodServerless] the sealed token of worker %s does not open with this "
                "replica's master key: every replica needs the same SWARMPOD_MASTER_KEY",
                row.worker_id,
            )
            return None
        opened = json.loads(plain)
        token = opened.get("token")
        return WorkerHandle(
            receipt=WakeReceipt(
                worker_id=row.worker_id,
                public_url=row.public_url,
                session_id=opened.get("session"),
                delay_ms=None,
                execution_ms=None,
            ),
            protocol=row.protocol,
            hold_job_id=row.job_id,
            authorization=Secret(token, ephemeral=True) if token else None,
        )

    def _sealed(self, handle: WorkerHandle, session_id: str | None) -> bytes:
        token = handle.authorization.reveal() if handle.authorization else None
        return self._master.encrypt(json.dumps({"token": token, "session": session_id}).encode())

    def _mirror_seats(self, slot: WorkerSlot, busy: int, now: float) -> None:
        """The owner's slot counts every replica's seats, for its idle window."""
        if not slot.chart.is_warm and slot.chart.state_id != "retiring":
            return
        before = slot.busy
        if busy > before:
            slot.taken_at.extend([now] * (busy - before))
        elif busy < before:
            del slot.taken_at[busy:]
        if busy == 0 and before > 0:
            slot.idle_since = now
        if busy and slot.chart.state_id == "idle":
            slot.chart.send("take")
        elif not busy and slot.chart.state_id == "busy":
            slot.chart.send("free")
        self._written[slot.number] = slot.chart.state_id

    async def _row_or_none(self, worker: int) -> WorkerRow | None:
        try:
            return await self.table.row(worker)
        except DatabaseError:
            return None

    async def _load_view(self) -> None:
        try:
            rows = await self.table.rows()
        except DatabaseError as exc:
            log.warning("[RunPodServerless] reading the shared pool: %s", exc)
            return
        self._view = {
            row.id: PoolNews(
                {
                    "p": row.pool,
                    "e": "row",
                    "w": row.id,
                    "o": row.owner,
                    "s": row.state,
                    "c": row.capacity,
                    "b": row.busy,
                }
            )
            for row in rows
        }
        self._poke_seater()

    def _slot(
        self, number: int, *, requested_at: float, hold_s: float
    ) -> tuple[WorkerSlot, WorkerObserver]:
        facts = WorkerFacts(self._endpoint_id, self._driver.name, number, requested_at)
        observer = self._observe(facts) if self._observe is not None else NO_OBSERVER
        chart = WorkerChart(listeners=[observer])
        slot = WorkerSlot(number, chart, requested_at=requested_at, hold_s=hold_s)
        return slot, observer

    def _start_worker(self, row: WorkerRow, *, hold_s: float) -> None:
        self._written[row.id] = "requested"
        self._start(row.id, requested_at=anyio.current_time(), hold_s=hold_s)

    def _start(
        self, number: int, *, requested_at: float, hold_s: float, adoption: Adoption | None = None
    ) -> None:
        """Run a worker of this replica (one it requested, or one it adopted)."""
        assert self._tasks is not None
        slot, observer = self._slot(number, requested_at=requested_at, hold_s=hold_s)
        runner = ClusterRunner(
            slot,
            self._driver,
            self._terms(hold_s),
            self,
            adoption=adoption,
            observer=observer,
            journal=self._journal,
            key=self._key,
            endpoint_id=self._endpoint_id,
            swarm_for=self._swarm_for,
            times=self._times,
        )
        self._runners[runner.slot.number] = runner
        self._all_ended = anyio.Event()

        async def run() -> None:
            with runner.scope:
                await runner.run()

        self._tasks.start_soon(run)

    def _terms(self, hold_s: float) -> LeaseTerms:
        return lease_terms(
            idle_window_s=self._idle.seconds,
            generation_s=self._times.generation,
            hold_s=hold_s,
            floor=self._floor,
        )

    def _write(self, kind: str, worker: int, what: object) -> None:
        """Queue a write of this replica's worker's row (in order; :meth:`_flushed`)."""
        if self._writes is None:
            return
        self._pending_writes += 1
        self._writes_done = anyio.Event()
        self._writes.send_nowait((kind, worker, what))

    async def _flushed(self) -> None:
        await self._writes_done.wait()

    async def _write_loop(
        self, receive: MemoryObjectReceiveStream[tuple[str, int, object]]
    ) -> None:
        async with receive:
            async for kind, worker, what in receive:
                with anyio.CancelScope(shield=True):
                    try:
                        await self._apply(kind, worker, what)
                    except DatabaseError as exc:
                        log.error("[RunPodServerless] shared pool row %d: %s", worker, exc)
                self._pending_writes -= 1
                if self._pending_writes == 0:
                    self._writes_done.set()

    async def _apply(self, kind: str, worker: int, what: object) -> None:
        if kind == "state":
            assert isinstance(what, tuple)
            state, job_id = what
            await self.table.set_state(worker, state, job_id=job_id)
        elif kind == "warm":
            assert isinstance(what, tuple)
            capacity, handle, session_id = what
            assert isinstance(handle, WorkerHandle)
            await self.table.mark_warm(
                worker,
                capacity=capacity,
                worker_id=handle.worker_id,
                job_id=handle.hold_job_id,
                public_url=handle.public_url,
                sealed=self._sealed(handle, session_id),
            )

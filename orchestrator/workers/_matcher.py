"""The pool's matcher: seats, the line of waiting generations, and the scaling decision.

Pure: no I/O and no clock reads (every event brings ``now``). The pool feeds it what happened
(a generation arrived or left, a worker changed state, became ready, freed a seat, went away)
and carries out the :class:`Plan` it answers: seat these waiters, fail those, request so many
workers, withdraw or give up these, tell every waiter a new reason.

Each event costs O(workers) at most — never O(waiting generations): the line is a FIFO with
lazy removal, the scaling decision is a sum over the seats held or coming (how many of the
first waiters each seat can serve before a new worker could), and waiters are told only when
the pool-wide reason for waiting changes.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Final, Generic, TypeVar

from statecharts import WorkerChart

from ..errors import ProtocolMismatchError, WorkerNotReadyError
from ..runpod import Job
from ._idle import IdleWindow, SurplusWindow
from ._scaling import late_after as default_late_after
from ._scaling import servable_before
from ._waiting import Waiting, WaitReason

__all__ = ["Plan", "SeatMatcher", "WorkerSlot"]

W = TypeVar("W")

# How many recent generations the expected generation time is the mean of.
_GENERATIONS_KEPT: Final = 20
# Until one ended, a generation is expected to hold its seat this long (an SDXL image takes
# 5-30 s on a serverless GPU): a seat serves the line one generation after another, so a second
# generation arriving while the first worker boots waits for it rather than booting another.
ASSUMED_GENERATION_S: Final = 30.0
_REASON_ORDER: Final = (
    WaitReason.MODEL_LOADING,
    WaitReason.BOOTING,
    WaitReason.UNHEALTHY,
    WaitReason.THROTTLED,
    WaitReason.QUEUED,
    WaitReason.REQUESTING,
)
_PENDING: Final = frozenset({"requested", "queued", "booting", "loading"})


@dataclass(eq=False)
class WorkerSlot:
    """What the pool knows of one worker it holds or asked for; its state is its chart's.

    Attributes:
        number: the worker's number in its pool (1, 2, ...).
        chart: the worker's chart: the only truth of its state.
        requested_at: when it was asked for (loop time).
        hold_s: how long it stays warm at least once ready (prewarm), 0 otherwise.
        capacity: generations it runs at once, once warm (its SwarmUI backends' ``max_usages``).
        taken_at: when each of its busy seats was taken.
        warm_at: when it became warm (inf before).
        idle_since: when its last busy seat freed (or it became warm).
        reason: why a generation waiting for it still waits.
        job: the RunPod job that holds it (or woke it), as last seen.
        session_id: a SwarmUI session open on it, once warm.
        served: how many generations took a seat on it.
    """

    number: int
    chart: WorkerChart
    requested_at: float
    hold_s: float = 0.0
    capacity: int = 0
    taken_at: list[float] = field(default_factory=list)
    warm_at: float = math.inf
    idle_since: float = 0.0
    reason: WaitReason = WaitReason.REQUESTING
    job: Job | None = None
    session_id: str | None = None
    served: int = 0

    @property
    def busy(self) -> int:
        """Generations running on it."""
        return len(self.taken_at)

    @property
    def free(self) -> int:
        """Seats a generation could take now (0 unless Warm)."""
        if not self.chart.is_warm:
            return 0
        return max(0, self.capacity - self.busy)

    @property
    def pending(self) -> bool:
        """Asked for and coming: requested, queued, booting or loading (not stalled, not
        being withdrawn)."""
        return self.chart.state_id in _PENDING

    @property
    def live(self) -> bool:
        """It holds (or may hold) a worker: not Released, not Lost."""
        return not self.chart.is_terminated

    @property
    def label(self) -> str:
        """``worker #3 (job id)`` for logs."""
        return f"worker #{self.number}" + (f" ({self.job.id})" if self.job else "")

    @property
    def job_id(self) -> str | None:
        """The id of the job that holds (or woke) it, once known."""
        return self.job.id if self.job is not None else None


@dataclass
class Plan(Generic[W]):
    """What the pool must do after an event (the matcher's answer).

    Attributes:
        seated: waiters given a seat: (waiter, worker, cold start?).
        failed: waiters that hear a failure.
        request: how many new workers to ask for.
        withdraw: queued requests nobody needs (their charts are Withdrawing already).
        give_up: stalled workers released (their charts are Draining already).
        tell: the pool-wide reason for waiting changed: every waiter hears it.
    """

    seated: list[tuple[W, WorkerSlot, bool]] = field(default_factory=list)
    failed: list[tuple[W, BaseException]] = field(default_factory=list)
    request: int = 0
    withdraw: list[WorkerSlot] = field(default_factory=list)
    give_up: list[WorkerSlot] = field(default_factory=list)
    tell: Waiting | None = None


@dataclass(eq=False)
class _Line(Generic[W]):
    """The FIFO of waiting generations; one that leaves is skipped when reached (O(1))."""

    queue: deque[tuple[W, float]] = field(default_factory=deque)
    left: set[int] = field(default_factory=set)
    count: int = 0

    def push(self, waiter: W, arrived: float) -> None:
        self.queue.append((waiter, arrived))
        self.count += 1

    def remove(self, waiter: W) -> None:
        """``waiter`` (in line, never popped) leaves; it stays queued until reached."""
        self.left.add(id(waiter))
        self.count -= 1
        self._trim()

    def pop(self) -> tuple[W, float] | None:
        self._trim()
        if not self.queue:
            return None
        self.count -= 1
        return self.queue.popleft()

    def __iter__(self) -> Iterator[tuple[W, float]]:
        return (item for item in self.queue if id(item[0]) not in self.left)

    def _trim(self) -> None:
        while self.queue and id(self.queue[0][0]) in self.left:
            self.left.discard(id(self.queue.popleft()[0]))


class SeatMatcher(Generic[W]):
    """Seats, waiting generations and the scaling decision of one pool (pure).

    Args:
        idle: the endpoint's idle window (read: the window, the expected cold start).
        max_workers: the most workers held at once.
        shared: a failure of a worker coming for the line fails every waiter (v1: one worker
            for everyone), not only the first ones it was asked for.
        probing: the protocol is not known yet: one request at a time until a worker came.
        late_after: seconds after its request past which a coming worker is late, given the
            expected cold start (a late worker is no longer counted on).
    """

    def __init__(
        self,
        *,
        idle: IdleWindow,
        max_workers: int,
        shared: bool = False,
        probing: bool = False,
        late_after: Callable[[float], float] = default_late_after,
    ) -> None:
        self._idle = idle
        self._surplus = SurplusWindow(idle, max_workers=max_workers)
        self._max_workers = max_workers
        self._shared = shared
        self.probing = probing
        self._late_after = late_after
        self._line: _Line[W] = _Line()
        self._workers: list[WorkerSlot] = []
        self._floor = 0
        self._closing = False
        self._capacity_estimate = 1
        self._measured = False
        self._generations: deque[float] = deque(maxlen=_GENERATIONS_KEPT)
        self._told: Waiting | None = None
        self._all_free_since: float | None = None

    # --- what the pool reads ------------------------------------------------------------

    @property
    def workers(self) -> list[WorkerSlot]:
        """Every worker held or asked for (in the order asked)."""
        return self._workers

    @property
    def waiting(self) -> int:
        """Generations in line."""
        return self._line.count

    @property
    def floor(self) -> int:
        """Workers a prewarm floor keeps."""
        return self._floor

    @property
    def closing(self) -> bool:
        """The pool is shutting down: no more seats, no more requests."""
        return self._closing

    @property
    def generation_s(self) -> float | None:
        """How long a generation holds its seat, on average lately (None before the first)."""
        if not self._generations:
            return None
        return sum(self._generations) / len(self._generations)

    @property
    def expected_generation_s(self) -> float:
        """How long a generation is expected to hold its seat: the recent mean, or an assumed
        :data:`ASSUMED_GENERATION_S` before the first ended."""
        generation = self.generation_s
        return ASSUMED_GENERATION_S if generation is None else generation

    def review_at(self, now: float) -> float:
        """When time alone may change the plan (inf: only events do): a busy seat's generation
        becoming late (well past its expected time: no longer counted on to free the seat), as
        long as generations wait in line."""
        if not self._line.count or self._closing:
            return math.inf
        late_after = self._late_after(self.expected_generation_s)
        late = (taken + late_after for slot in self._workers for taken in slot.taken_at)
        return min((at for at in late if at > now), default=math.inf)

    def late_after_s(self) -> float:
        """How long after its request a coming worker is late: well past the expected cold
        start (the assumed one until a start was measured)."""
        return self._late_after(self._idle.cold_start_s)

    def line(self) -> Iterator[W]:
        """The generations in line, first first."""
        return (waiter for waiter, _ in self._line)

    @property
    def told(self) -> Waiting | None:
        """The reason the generations in line were last told (a newcomer hears it too)."""
        return self._told

    def reason(self) -> Waiting:
        """Why the generations in line wait (the best news among the workers coming)."""
        pending = [slot for slot in self._workers if slot.pending]
        if not pending:
            return Waiting(WaitReason.WORKERS_BUSY)
        best = min(pending, key=lambda slot: _REASON_ORDER.index(slot.reason))
        return Waiting(best.reason, job=best.job)

    def take_free(self) -> WorkerSlot | None:
        """A worker with a free seat for a generation that arrives now, if none waits."""
        if self._line.count or self._closing:
            return None
        return self._best_free()

    def release_at(self, slot: WorkerSlot) -> float:
        """When a free warm worker is released: its idle window after its last generation, the
        surplus window (:class:`SurplusWindow`) beside a more recently used idle worker, never
        under a prewarm hold or while a prewarm floor keeps it (inf)."""
        if self._closing:
            return -math.inf
        if self._floor_keeps():
            return math.inf
        window = self._idle.seconds
        idle = [other for other in self._workers if other.chart.is_warm and other.busy == 0]
        keeper = max(idle, key=lambda other: (other.idle_since, other.number), default=None)
        if keeper is not None and keeper is not slot:
            window = min(window, self._surplus.seconds)
        return max(slot.idle_since + window, slot.warm_at + slot.hold_s)

    # --- events -------------------------------------------------------------------------

    def arrive(self, waiter: W, now: float) -> Plan[W]:
        """A generation asks for a seat (it took none at once): it joins the line."""
        if self._all_free_since is not None and not self._busy_anywhere():
            self._idle.observe_gap(now - self._all_free_since)
        self._all_free_since = None
        self._line.push(waiter, now)
        return self._plan(now)

    def took(self, slot: WorkerSlot, now: float) -> None:
        """A generation took a free seat at once (:meth:`take_free`)."""
        if self._all_free_since is not None and not self._busy_anywhere():
            self._idle.observe_gap(now - self._all_free_since)
        self._all_free_since = None
        self._seat(slot, now)
        self._observe_demand(now)

    def leave(self, waiter: W, now: float) -> Plan[W]:
        """A generation still in line gave up (cancelled, timed out)."""
        self._line.remove(waiter)
        return self._plan(now)

    def added(self, slot: WorkerSlot) -> None:
        """A worker the plan asked for was made (its chart Requested)."""
        self._workers.append(slot)

    def changed(self, now: float) -> Plan[W]:
        """A worker's chart or reason changed, or time went by (a coming worker may be late)."""
        return self._plan(now)

    def ready(self, slot: WorkerSlot, capacity: int, now: float) -> Plan[W]:
        """A worker became warm with ``capacity`` seats (its chart Warm): seat the line."""
        slot.capacity = max(1, capacity)
        slot.warm_at = slot.idle_since = now
        self._capacity_estimate = slot.capacity
        self._measured = True
        return self._plan(now, fresh=slot)

    def freed(self, slot: WorkerSlot, taken_at: float, now: float, *, finished: bool) -> Plan[W]:
        """A generation left its seat; ``finished``: it ran to its end (its time counts)."""
        if taken_at in slot.taken_at:
            slot.taken_at.remove(taken_at)
        if finished:
            self._generations.append(now - taken_at)
        if slot.busy == 0:
            slot.idle_since = now
            if slot.chart.state_id == "busy":
                slot.chart.send("free")
            if not self._busy_anywhere():
                self._all_free_since = now
        return self._plan(now)

    def gone(self, slot: WorkerSlot, failure: BaseException | None, now: float) -> Plan[W]:
        """A worker ended (released or lost). A failure of one that was still coming is told
        to the waiters it was asked for (all of them if ``shared``, or on a protocol mismatch);
        one that timed out is replaced for them instead."""
        if slot in self._workers:
            self._workers.remove(slot)
        plan: Plan[W] = Plan()
        if failure is not None and slot.warm_at == math.inf:
            if isinstance(failure, ProtocolMismatchError) or self._shared:
                how_many = self._line.count
            elif isinstance(failure, WorkerNotReadyError):
                how_many = 0
            else:
                how_many = self._capacity_estimate
            for _ in range(how_many):
                head = self._line.pop()
                if head is None:
                    break
                plan.failed.append((head[0], failure))
        merged = self._plan(now)
        merged.failed[:0] = plan.failed
        return merged

    def set_floor(self, workers: int, now: float) -> Plan[W]:
        """Keep at least ``workers`` workers (a prewarm schedule); 0 ends the floor."""
        self._floor = min(max(0, workers), self._max_workers)
        return self._plan(now)

    def close(self) -> list[W]:
        """Shut down: no more seats or requests; returns the waiters still in line."""
        self._closing = True
        self._floor = 0
        waiters = []
        while (head := self._line.pop()) is not None:
            waiters.append(head[0])
        return waiters

    def room(self) -> int:
        """How many more workers may be asked for now."""
        limit = 1 if self.probing else self._max_workers
        return max(0, limit - sum(1 for slot in self._workers if slot.live))

    # --- the decision -------------------------------------------------------------------

    def _plan(self, now: float, *, fresh: WorkerSlot | None = None) -> Plan[W]:
        plan: Plan[W] = Plan()
        while self._line.count:
            slot = self._best_free()
            if slot is None:
                break
            head = self._line.pop()
            assert head is not None
            waiter, arrived = head
            self._seat(slot, now)
            plan.seated.append((waiter, slot, slot is fresh and slot.warm_at > arrived))
        self._observe_demand(now)
        if self._closing:
            return plan
        self._scale(plan, now)
        reason = self.reason() if not plan.request else Waiting(WaitReason.REQUESTING)
        if self._line.count and reason != self._told:
            plan.tell = reason
        if self._line.count:
            self._told = reason
        else:
            self._told = None
        return plan

    def _scale(self, plan: Plan[W], now: float) -> None:
        """Ask for the workers the line needs; take back the ones nobody needs.

        Workers coming on time count as capacity; a late one (well past the measured cold
        start) or a stalled one (an answer of its job was lost) does not, so the line gets a
        replacement. A busy seat counts from its generation's expected end, until that
        generation is late in turn (it may run on for long). What is taken back: queued
        requests beyond what the line needs (newest first); once nobody waits, late queued ones
        and stalled ones; and a stalled one whose slot a waiting generation needs under
        MaxWorkers. A late worker that already runs (bills) is kept: it is lost at its own
        deadline if it never arrives.
        """
        expected = self._idle.cold_start_s
        late_after = self._late_after(expected) if self._measured else math.inf
        warm = [s for s in self._workers if s.chart.is_warm]
        coming = [s for s in self._workers if s.pending]
        on_time = [s for s in coming if now < s.requested_at + late_after]
        stalled = [s for s in self._workers if s.chart.state_id == "stalled"]
        generation = self.expected_generation_s
        waiting = self._line.count
        seats: list[tuple[float, int]] = [(now, sum(slot.free for slot in warm))]
        if seats[0][1] < waiting:  # free seats alone may do
            generation_late = self._late_after(generation)
            for slot in warm:
                seats += [
                    (max(now, taken + generation), 1)
                    for taken in slot.taken_at
                    if now < taken + generation_late  # a late one may run on for long
                ]
        for slot in on_time:
            seats.append((max(now, slot.requested_at + expected), self._capacity_estimate))
        new = max(0, waiting - servable_before(now + expected, seats, generation))
        new = max(new, self._floor - len(warm) - len(on_time))
        room = self.room()
        while new > room and waiting and stalled:
            self._give_up(stalled.pop(0), plan)
            room += 1
        plan.request = max(0, min(new, room))
        keep = max(math.ceil(waiting / self._capacity_estimate), self._floor - len(warm))
        prewarmed = [s for s in on_time if s.hold_s > 0]  # asked for by prewarm: never surplus
        for_line = [s for s in on_time if s.hold_s <= 0]
        surplus = len(for_line) + plan.request - max(0, keep - len(prewarmed))
        for slot in reversed(for_line):
            if surplus <= 0:
                break
            if slot.chart.state_id == "queued":  # requested: no id yet; booting: it bills
                self._withdraw(slot, plan)
                surplus -= 1
        if not waiting:
            for slot in stalled:
                self._give_up(slot, plan)
            late_queued = [
                s
                for s in coming
                if s not in on_time and s.chart.state_id == "queued" and s.hold_s <= 0
            ]
            for slot in late_queued[: max(0, len(late_queued) - max(0, keep - len(on_time)))]:
                self._withdraw(slot, plan)

    def _withdraw(self, slot: WorkerSlot, plan: Plan[W]) -> None:
        slot.chart.send("withdraw")
        plan.withdraw.append(slot)

    def _give_up(self, slot: WorkerSlot, plan: Plan[W]) -> None:
        slot.chart.send("release")
        plan.give_up.append(slot)

    def _seat(self, slot: WorkerSlot, now: float) -> None:
        slot.taken_at.append(now)
        slot.served += 1
        if slot.chart.state_id == "idle":
            slot.chart.send("take")

    def _best_free(self) -> WorkerSlot | None:
        free = [slot for slot in self._workers if slot.free > 0]
        # The most recently used first: the others idle out sooner, which is cheaper.
        return max(free, key=lambda slot: (slot.busy, slot.idle_since), default=None)

    def _observe_demand(self, now: float) -> None:
        seats = sum(slot.busy for slot in self._workers) + self._line.count
        self._surplus.observe_demand(-(-seats // self._capacity_estimate), now)

    def _busy_anywhere(self) -> bool:
        return any(slot.busy for slot in self._workers)

    def _floor_keeps(self) -> bool:
        if self._floor == 0:
            return False
        return sum(1 for slot in self._workers if slot.chart.is_warm) <= self._floor

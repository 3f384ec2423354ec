"""The pool's matcher, alone: pure decisions over seats, the line and the workers coming.

No I/O and no clock: each event brings ``now``, each answer is a plan the pool carries out.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from orchestrator.errors import JobFailedError, ProtocolMismatchError, WorkerNotReadyError
from orchestrator.workers import IdleWindow
from orchestrator.workers._matcher import Plan, SeatMatcher, WorkerSlot
from orchestrator.workers._waiting import WaitReason
from statecharts import WorkerChart


class Waiter:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


def matcher(*, idle: IdleWindow | None = None, max_workers: int = 3) -> SeatMatcher[Waiter]:
    return SeatMatcher(
        idle=idle or IdleWindow(30.0, assumed_cold_start_s=60.0), max_workers=max_workers
    )


def add(m: SeatMatcher[Waiter], plan: Plan[Waiter], now: float) -> list[WorkerSlot]:
    """Make the workers ``plan`` asks for (what the pool does), each submitted at once."""
    made = []
    for _ in range(plan.request):
        slot = WorkerSlot(len(m.workers) + 1, WorkerChart(), requested_at=now)
        slot.chart.send("submitted")
        m.added(slot)
        made.append(slot)
    return made


def warm_up(slot: WorkerSlot) -> None:
    for event in ("handed_over", "loaded"):
        slot.chart.send(event)


def names(seated: Iterable[tuple[Waiter, WorkerSlot, bool]]) -> list[str]:
    return [waiter.name for waiter, _, _ in seated]


def test_the_first_generation_asks_for_one_worker_and_the_line_waits_for_it() -> None:
    m = matcher()
    plan = m.arrive(Waiter("a"), 0.0)
    assert (plan.request, plan.seated, plan.tell) == (1, [], plan.tell)
    assert plan.tell is not None and plan.tell.reason is WaitReason.REQUESTING
    (slot,) = add(m, plan, 0.0)
    # A generation is assumed to take 30 s until one ended: b, a second after a, would get a's
    # worker at ~90 s, later than a second worker asked for now (61 s): asked for ...
    (extra,) = add(m, m.arrive(Waiter("b"), 1.0), 1.0)
    warm_up(slot)
    plan = m.ready(slot, capacity=2, now=60.0)
    # ... which the first one's two seats make needless: withdrawn while still queued.
    assert names(plan.seated) == ["a", "b"] and all(cold for _, _, cold in plan.seated)
    assert slot.chart.state_id == "busy" and slot.busy == 2
    assert plan.withdraw == [extra]


def test_the_line_is_served_first_come_first_served_and_a_leaver_is_skipped() -> None:
    m = matcher(max_workers=1)
    waiters = [Waiter(str(i)) for i in range(5)]
    (slot,) = add(m, m.arrive(waiters[0], 0.0), 0.0)
    for i, waiter in enumerate(waiters[1:], start=1):
        m.arrive(waiter, float(i))
    m.leave(waiters[2], 10.0)
    assert m.waiting == 4
    warm_up(slot)
    plan = m.ready(slot, capacity=1, now=60.0)
    assert names(plan.seated) == ["0"]
    served = []
    for t in range(61, 70):
        plan = m.freed(slot, slot.taken_at[0], float(t), finished=True)
        served += names(plan.seated)
        if not m.waiting:
            break
    assert served == ["1", "3", "4"]


def test_a_warm_worker_that_frees_seats_soon_enough_means_no_new_worker() -> None:
    m = matcher()
    (slot,) = add(m, m.arrive(Waiter("a"), 0.0), 0.0)
    warm_up(slot)
    m.ready(slot, capacity=1, now=60.0)
    m.freed(slot, 60.0, 64.0, finished=True)  # a generation takes 4 s
    m.took(slot, 64.0)
    # 10 more while it works: one every 4 s is sooner than a 60 s cold start for all of them
    plans = [m.arrive(Waiter(f"w{i}"), 64.0) for i in range(10)]
    assert sum(plan.request for plan in plans) == 0


def test_a_generation_arriving_late_in_the_first_boot_waits_for_that_worker() -> None:
    m = matcher()
    (slot,) = add(m, m.arrive(Waiter("a"), 0.0), 0.0)
    # a's worker is expected at 60 s and a to take 30 s: b gets it at ~90 s, sooner than a
    # worker asked for now (110 s), which would only bill its boot.
    plan = m.arrive(Waiter("b"), 50.0)
    assert plan.request == 0
    warm_up(slot)
    assert names(m.ready(slot, capacity=1, now=60.0).seated) == ["a"]
    assert names(m.freed(slot, 60.0, 75.0, finished=True).seated) == ["b"]
    assert len(m.workers) == 1


def test_a_generation_running_past_its_expected_end_gets_the_line_a_new_worker() -> None:
    m = matcher()
    (slot,) = add(m, m.arrive(Waiter("a"), 0.0), 0.0)
    warm_up(slot)
    m.ready(slot, capacity=1, now=60.0)
    m.freed(slot, 60.0, 64.0, finished=True)  # a generation takes 4 s
    m.took(slot, 100.0)
    assert m.review_at(100.0) == float("inf")  # nobody waits: time changes nothing
    assert m.arrive(Waiter("b"), 101.0).request == 0  # the seat frees at ~104 s
    # Late (past 1.25 x 4 s + 20 s, the rule for late workers) it is no longer counted on: the
    # plan is reviewed then, with no event, and b gets a worker of its own.
    assert m.review_at(101.0) == 124.0
    assert m.changed(123.0).request == 0
    assert m.changed(124.0).request == 1


def test_a_queued_worker_nobody_needs_any_more_is_withdrawn() -> None:
    m = matcher()
    a = Waiter("a")
    (slot,) = add(m, m.arrive(a, 0.0), 0.0)
    plan = m.leave(a, 5.0)
    assert plan.withdraw == [slot] and slot.chart.state_id == "withdrawing"


def test_a_booting_worker_nobody_needs_is_kept_it_bills_already() -> None:
    m = matcher()
    a = Waiter("a")
    (slot,) = add(m, m.arrive(a, 0.0), 0.0)
    slot.chart.send("assigned")
    plan = m.leave(a, 5.0)
    assert plan.withdraw == [] and slot.chart.state_id == "booting"


def test_a_prewarmed_worker_is_never_surplus() -> None:
    m = matcher()
    slot = WorkerSlot(1, WorkerChart(), requested_at=0.0, hold_s=300.0)
    slot.chart.send("submitted")
    m.added(slot)
    assert m.changed(5.0).withdraw == []


def two_warm_workers(m: SeatMatcher[Waiter], now: float) -> list[WorkerSlot]:
    """Two generations arrive together, each gets a worker of its own and takes its seat."""
    plan = m.arrive(Waiter("a"), now)
    first = add(m, plan, now)
    second = add(m, m.arrive(Waiter("b"), now), now)
    slots = first + second
    assert len(slots) == 2
    for slot in slots:
        warm_up(slot)
        assert len(m.ready(slot, 1, now + 60.0).seated) == 1
    return slots


def test_a_worker_left_over_from_a_drained_burst_is_released_at_once() -> None:
    m = matcher(idle=IdleWindow(120.0))
    first, second = two_warm_workers(m, 0.0)
    m.freed(first, 60.0, 70.0, finished=True)
    m.freed(second, 60.0, 72.0, finished=True)
    # nothing shows two workers will be needed at once again: the surplus one goes now,
    # the one used last keeps the whole window
    assert m.release_at(first) == 70.0
    assert m.release_at(second) == 72.0 + 120.0


def test_a_surplus_worker_is_kept_once_the_demand_came_back_for_it() -> None:
    m = matcher(idle=IdleWindow(120.0))
    first, second = two_warm_workers(m, 0.0)
    m.freed(first, 60.0, 70.0, finished=True)
    m.freed(second, 60.0, 72.0, finished=True)
    for name, slot in (("c", second), ("d", first)):  # 20 s later, two at once again
        assert names(m.arrive(Waiter(name), 90.0).seated) == [name]
        assert slot.busy == 1
    m.freed(first, 90.0, 100.0, finished=True)
    m.freed(second, 90.0, 102.0, finished=True)
    assert m.release_at(first) == 100.0 + 120.0  # a surplus gap was seen: kept like the last


def test_a_stalled_worker_is_replaced_then_given_up_once_nobody_waits() -> None:
    m = matcher(max_workers=2)
    a = Waiter("a")
    (first,) = add(m, m.arrive(a, 0.0), 0.0)
    first.chart.send("stall")  # an answer of its /stream was lost
    plan = m.changed(10.0)
    (second,) = add(m, plan, 10.0)  # no capacity: a replacement
    assert first.chart.state_id == "stalled"
    warm_up(second)
    plan = m.ready(second, capacity=1, now=70.0)
    assert names(plan.seated) == ["a"]
    assert plan.give_up == [first] and first.chart.state_id == "draining"


def test_a_stalled_worker_makes_room_under_max_workers_for_the_line() -> None:
    m = matcher(max_workers=1)
    (first,) = add(m, m.arrive(Waiter("a"), 0.0), 0.0)
    first.chart.send("stall")
    plan = m.changed(10.0)
    assert plan.give_up == [first] and plan.request == 1


def test_a_late_worker_is_not_counted_on_once_cold_starts_were_measured() -> None:
    idle = IdleWindow(30.0, assumed_cold_start_s=60.0)
    m = matcher(idle=idle, max_workers=3)
    (first,) = add(m, m.arrive(Waiter("a"), 0.0), 0.0)
    warm_up(first)
    m.ready(first, capacity=1, now=20.0)  # measured: a 20 s cold start
    idle.observe_cold_start(20.0)
    m.freed(first, 20.0, 320.0, finished=True)  # a generation takes 300 s
    m.took(first, 320.0)
    m.arrive(Waiter("b"), 320.0)  # the first worker is busy for 300 s: b asks for another...
    (second,) = add(m, m.changed(320.0), 320.0)
    assert m.changed(330.0).request == 0  # ... on time at first
    assert m.changed(320.0 + 46.0).request == 1  # late (past 1.25 x 20 + 20 s): replaced
    assert second.chart.state_id == "queued"  # and not withdrawn: b still waits


def test_a_worker_that_failed_coming_fails_the_waiter_it_was_asked_for() -> None:
    m = matcher()
    a, b = Waiter("a"), Waiter("b")
    (slot,) = add(m, m.arrive(a, 0.0), 0.0)
    m.arrive(b, 1.0)
    failure = JobFailedError("refused", job_status="FAILED")
    plan = m.gone(slot, failure, 10.0)
    assert plan.failed == [(a, failure)] and plan.request == 1  # b gets a new worker


def test_a_worker_that_timed_out_coming_is_replaced_not_failed() -> None:
    m = matcher()
    a = Waiter("a")
    (slot,) = add(m, m.arrive(a, 0.0), 0.0)
    plan = m.gone(slot, WorkerNotReadyError(120), 130.0)
    assert plan.failed == [] and plan.request == 1


def test_a_protocol_mismatch_fails_the_whole_line() -> None:
    m = matcher()
    waiters = [Waiter(str(i)) for i in range(3)]
    (slot,) = add(m, m.arrive(waiters[0], 0.0), 0.0)
    for waiter in waiters[1:]:
        m.arrive(waiter, 1.0)
    plan = m.gone(slot, ProtocolMismatchError(detected="v1"), 5.0)
    assert [w for w, _ in plan.failed] == waiters


@pytest.mark.parametrize("line", [10, 10_000])
def test_waiters_are_told_once_per_change_of_reason_whatever_the_line(line: int) -> None:
    m = matcher(max_workers=1)
    tells = 0
    slot: WorkerSlot | None = None
    for i in range(line):
        plan = m.arrive(Waiter(str(i)), 0.0)
        tells += plan.tell is not None
        if plan.request:
            (slot,) = add(m, plan, 0.0)
    assert slot is not None
    slot.reason = WaitReason.BOOTING
    tells += m.changed(10.0).tell is not None
    tells += m.changed(11.0).tell is not None  # nothing new
    assert tells == 2  # requesting, then booting: not one per waiter

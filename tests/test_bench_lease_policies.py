"""The lease-policy benchmark's pieces: its traces, its floor, its rows and goals."""

from __future__ import annotations

import dataclasses
import doctest
import importlib
from collections.abc import Callable
from itertools import pairwise

import pytest

from benchmarks import lease_policies
from benchmarks._floor import Floor, StartCosts, floor
from benchmarks._replay import Endpoint, Outcome, Policy, Replay
from benchmarks._traces import Trace, batch, interactive, sparse
from benchmarks.lease_policies import Row, goals, markdown, row_of, table
from orchestrator.emulator import LedgerEntry

COSTS = StartCosts(cold_s=75.0, flashboot_s=6.0)


# --- traces -----------------------------------------------------------------------------------


def test_the_interactive_trace_is_the_same_for_the_same_seed_only() -> None:
    assert interactive(seed=3) == interactive(seed=3)
    assert interactive(seed=3).arrivals != interactive(seed=4).arrivals


def _sessions(trace: Trace, longest_think_s: float) -> list[list[float]]:
    sessions: list[list[float]] = [[trace.arrivals[0]]]
    for earlier, later in pairwise(trace.arrivals):
        if later - earlier > longest_think_s:
            sessions.append([])
        sessions[-1].append(later)
    return sessions


@pytest.mark.parametrize("seed", [1, 2, 99])
def test_interactive_sessions_ask_every_20_to_90_s_for_10_minutes_then_leave(seed: int) -> None:
    trace = interactive(seed=seed)
    sessions = _sessions(trace, longest_think_s=90.0)
    assert len(sessions) == 4
    for session in sessions:
        assert len(session) >= 600 // 90
        assert session[-1] - session[0] <= 600.0
        assert all(20.0 <= later - earlier <= 90.0 for earlier, later in pairwise(session))
    for left, back in pairwise(sessions):
        assert 1200.0 <= back[0] - left[-1] <= 2400.0
    assert trace.arrivals[0] == 0.0


def test_the_interactive_trace_follows_its_parameters() -> None:
    trace = interactive(
        seed=5, sessions=2, session_s=100.0, think_s=(10.0, 10.0), away_s=(50.0, 50.0)
    )
    assert trace.arrivals == (
        0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0,
        150.0, 160.0, 170.0, 180.0, 190.0, 200.0, 210.0, 220.0, 230.0, 240.0, 250.0,
    )  # fmt: skip


def test_the_batch_arrives_at_once() -> None:
    trace = batch()
    assert len(trace) == 200
    assert set(trace.arrivals) == {0.0}
    assert trace.span_s == 0.0


def test_the_sparse_trace_asks_every_ten_minutes() -> None:
    trace = sparse()
    assert len(trace) == 12
    assert trace.arrivals[0] == 0.0
    assert all(later - earlier == 600.0 for earlier, later in pairwise(trace.arrivals))
    assert trace.span_s == 11 * 600.0


@pytest.mark.parametrize(
    "make",
    [
        lambda: Trace("bad", (5.0, 1.0)),
        lambda: Trace("bad", (-1.0,)),
        lambda: interactive(think_s=(0.0, 10.0)),
        lambda: interactive(away_s=(20.0, 10.0)),
        lambda: batch(count=-1),
        lambda: sparse(every_s=0.0),
    ],
)
def test_impossible_traces_are_refused(make: Callable[[], Trace]) -> None:
    with pytest.raises(ValueError, match=r"."):
        make()


# --- the floor --------------------------------------------------------------------------------


def test_start_costs_are_the_means_of_the_ranges() -> None:
    assert StartCosts.of((60.0, 90.0), (2.0, 10.0)) == COSTS
    assert StartCosts.of(30.0, None) == StartCosts(30.0, 30.0)


def test_one_request_costs_its_generation_and_a_cold_start() -> None:
    assert floor([100.0], [4.0], COSTS) == Floor("arrivals", 4.0, 75.0, 0.0, 79.0)


def test_a_gap_shorter_than_a_revival_is_idled_through() -> None:
    found = floor([0.0, 7.0], [4.0, 4.0], COSTS)  # 3 s gap < 6 s FlashBoot
    assert found.gaps_s == 3.0
    assert found.total == 8.0 + 75.0 + 3.0


def test_a_gap_longer_than_a_revival_pays_the_revival() -> None:
    found = floor([0.0, 30.0, 94.0], [4.0, 4.0, 4.0], COSTS)  # gaps 26 s and 60 s
    assert found.gaps_s == 6.0 + 6.0
    assert found.total == 12.0 + 75.0 + 12.0


def test_a_gap_past_the_flashboot_window_pays_a_cold_start() -> None:
    found = floor([0.0, 4.0 + 606.0 + 1.0], [4.0, 4.0], COSTS)  # revival would start 601 s late
    assert found.gaps_s == 75.0
    at_edge = floor([0.0, 4.0 + 606.0], [4.0, 4.0], COSTS)  # starts exactly 600 s after the stop
    assert at_edge.gaps_s == 6.0


def test_a_gap_shorter_than_the_cold_start_it_would_need_is_idled_through() -> None:
    costs = StartCosts(cold_s=75.0, flashboot_s=6.0, flashboot_window_s=20.0)
    assert floor([0.0, 54.0], [4.0, 4.0], costs).gaps_s == 50.0  # min(50, 75)


def test_the_generation_durations_of_the_run_count() -> None:
    assert floor([0.0, 100.0], [3.0, 5.5], COSTS).generation_s == 8.5


def test_a_batch_boots_every_worker_once_and_idles_never() -> None:
    found = floor([0.0] * 10, [4.0] * 10, COSTS, workers=3)
    assert found == Floor("batch", 40.0, 3 * 75.0, 0.0, 40.0 + 75.0)
    assert found.total == 40.0 + 225.0
    assert floor([0.0] * 2, [4.0] * 2, COSTS, workers=5).starts_s == 2 * 75.0  # 2 are enough


def test_no_floor_for_overlapping_requests_that_do_not_arrive_together() -> None:
    with pytest.raises(ValueError, match="overlap"):
        floor([0.0, 1.0, 1.0], [4.0, 4.0, 4.0], COSTS)


def test_floor_arguments_are_checked() -> None:
    assert floor([], [], COSTS).total == 0.0
    with pytest.raises(ValueError, match="one duration per arrival"):
        floor([0.0], [], COSTS)
    with pytest.raises(ValueError, match="workers"):
        floor([0.0], [4.0], COSTS, workers=0)


def test_the_floor_of_the_sparse_trace() -> None:
    trace = sparse()
    found = floor(trace.arrivals, [4.0] * len(trace), COSTS)
    assert found.total == 12 * 4.0 + 75.0 + 11 * 6.0  # every 596 s gap is a FlashBoot revival


# --- rows, goals, tables ----------------------------------------------------------------------


def _entry(worker: str, billed: int, *, flashboot: bool = False) -> LedgerEntry:
    return LedgerEntry(worker, 0.0, float(billed), billed, flashboot, 1.0, 1.0, 1.0)


def _replay(outcomes: list[Outcome], ledger: list[LedgerEntry], api_calls: int) -> Replay:
    return Replay(tuple(outcomes), tuple(ledger), api_calls, 0, 0, 100.0, 0.1)


def test_a_row_sums_the_ledger_and_splits_the_calls_of_cold_generations() -> None:
    trace = Trace("t", (0.0, 30.0, 60.0, 90.0))
    outcomes = [
        Outcome(0.0, 80.0, True, 5, None),
        Outcome(30.0, 4.0, False, 0, None),
        Outcome(60.0, 14.0, True, 3, None),
        Outcome(90.0, None, False, 2, "TransportError: gone"),
    ]
    ledger = [_entry("a", 150), _entry("b", 40, flashboot=True)]
    row = row_of(trace, Policy("p", "swarmpod", 60.0), Endpoint(), _replay(outcomes, ledger, 11))

    assert (row.requests, row.ok, row.billed_s) == (4, 3, 190)
    assert (row.boots, row.flashboots, row.cold_generations) == (2, 1, 2)
    assert row.floor.total == 16.0 + 75.0 + 3 * 6.0
    assert row.ratio == pytest.approx(190 / 109)
    assert (row.p50_s, row.p95_s) == (14.0, 80.0)
    assert row.calls_per_generation == 11 / 4
    assert row.calls_per_cold_generation == (5 + 3) / 2
    assert row.failures == (("TransportError", 1),)


def _row(trace: str, policy: str, *, billed: int, p50: float, cold_calls: int) -> Row:
    found = Floor("arrivals", 40.0, 60.0, 0.0, 100.0)
    return Row(
        trace=trace,
        policy=policy,
        requests=10,
        ok=10,
        billed_s=billed,
        floor=found,
        floor_without_flashboot=found,
        p50_s=p50,
        p95_s=p50 * 2,
        boots=2,
        flashboots=1,
        cold_generations=2,
        api_calls=20,
        cold_api_calls=cold_calls,
        unattributed_calls=0,
        generation_s=4.0,
        workers_left=0,
        failures=(),
        virtual_s=1000.0,
        wall_s=0.5,
    )


def test_goals_judge_swarmpod_auto_against_the_limits() -> None:
    rows = [
        _row("interactive", "swarmpod-auto", billed=120, p50=4.5, cold_calls=12),
        _row("batch", "swarmpod-auto", billed=110, p50=90.0, cold_calls=14),
        _row("interactive", "seed-5s", billed=500, p50=15.0, cold_calls=100),
    ]
    judged = {goal.what: goal for goal in goals(rows, None)}
    floor = "floor (the issue's: min(gap, cold start))"

    assert judged[f"swarmpod-auto interactive: billed <= 1.25x {floor}"].passed
    assert not judged[f"swarmpod-auto batch: billed <= 1.05x {floor}"].passed
    assert judged["swarmpod-auto interactive: p50 time-to-image <= generation + 1 s"].passed
    per_cold = "RunPod API calls per cold generation <= 6"
    assert judged[f"swarmpod-auto interactive: {per_cold}"].passed  # 6.0
    assert not judged[f"swarmpod-auto batch: {per_cold}"].passed  # 7.0
    assert len(judged) == 5  # the seed rows carry no goal


def test_the_tables_show_every_row_and_the_goals() -> None:
    rows = (
        _row("interactive", "swarmpod-auto", billed=120, p50=4.5, cold_calls=12),
        _row("interactive", "seed-5s", billed=500, p50=15.0, cold_calls=100),
    )
    report = lease_policies.Report(rows, None, goals(rows, None), (interactive(),))

    text = table(report)
    assert "seed-5s" in text
    assert "[PASS] swarmpod-auto interactive: billed <= 1.25x floor (the issue's" in text

    partial = dataclasses.replace(rows[1], ok=9)
    assert "| 5.00\\* |" in markdown(dataclasses.replace(report, rows=(partial,)))

    lines = markdown(report).splitlines()
    assert lines[0].startswith("| trace | policy |")
    assert lines[2].startswith("| interactive | swarmpod-auto | 10/10 | 120 | 100 | 1.20 |")
    assert len([line for line in lines if line.startswith("| interactive")]) == 2


@pytest.mark.parametrize("name", ["benchmarks._traces", "benchmarks._floor", "benchmarks._calls"])
def test_docstring_examples_run(name: str) -> None:
    failures, _ = doctest.testmod(importlib.import_module(name))
    assert failures == 0


# --- a reduced run, end to end ----------------------------------------------------------------


@pytest.mark.slow
def test_a_reduced_run_measures_every_policy_on_every_trace() -> None:
    report = lease_policies.measure("small", forwarding_samples=0)

    names = [policy.name for policy in lease_policies.POLICIES]
    assert [(row.trace, row.policy) for row in report.rows] == [
        (trace, name) for trace in ("interactive", "batch", "sparse") for name in names
    ]
    for row in report.rows:
        assert row.workers_left == 0
        assert row.billed_s > 0
        assert row.boots >= 1
        if row.policy.startswith("swarmpod"):
            assert row.ok == row.requests
    assert report.forwarding is None
    assert any(goal.what.startswith("swarmpod-auto batch") for goal in report.goals)

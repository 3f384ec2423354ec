"""The lease-policy benchmark's pieces: its traces, its runs and summaries over seeds, the
frontier, the goals with their reasons, the tables and the frontier plots."""

from __future__ import annotations

import dataclasses
import doctest
import importlib
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import pytest

from benchmarks import lease_policies
from benchmarks._figures import Spread, Summary, frontier, run_of, summarise
from benchmarks._goals import checks, goals
from benchmarks._plot import frontier_svg, write_plots
from benchmarks._replay import Endpoint, Outcome, Policy, Replay
from benchmarks._tables import Report, markdown, table
from benchmarks._traces import Trace, batch, interactive, sparse
from orchestrator.emulator import LedgerEntry

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


def test_the_batch_arrives_at_once_and_the_sparse_trace_every_ten_minutes() -> None:
    assert set(batch().arrivals) == {0.0} and len(batch()) == 200
    trace = sparse()
    assert len(trace) == 12
    assert all(later - earlier == 600.0 for earlier, later in pairwise(trace.arrivals))


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


def test_the_benchmark_replays_every_window_and_the_seed_on_ten_seeds_and_two_regimes() -> None:
    names = [policy.name for policy in lease_policies.POLICIES]
    assert names[0] == "swarmpod-auto"
    assert [f"swarmpod-{w}s" for w in (0, 5, 10, 20, 40, 60, 120, 300)] == names[1:9]
    assert names[9:] == ["seed-5s", "seed-120s"]
    plan = lease_policies.scenarios("full")
    assert len(plan) == 3 * 2 * 10
    assert {s.endpoint.regime for s in plan} == {"flashboot", "cold"}
    assert {s.endpoint.seed for s in plan} == set(range(1, 11))
    assert all(s.endpoint.config(lease_policies.POLICIES[0]).flashboot_start_s is None
               for s in plan if s.endpoint.regime == "cold")  # fmt: skip


# --- runs, summaries, frontier, goals -------------------------------------------------------


def _entry(worker: str, billed: int, boot_s: float, *, flashboot: bool = False) -> LedgerEntry:
    return LedgerEntry(worker, 0.0, float(billed), billed, flashboot, boot_s, 1.0, 1.0)


def test_a_run_reads_the_ledger_and_the_calls_the_emulator_served() -> None:
    trace = Trace("t", (0.0, 30.0, 60.0, 90.0))
    endpoint = Endpoint("cold", seed=4, cold_start_s=(60.0, 90.0))
    outcomes = (
        Outcome(0.0, 84.0, True, None),
        Outcome(30.0, 4.5, False, None),
        Outcome(60.0, 14.0, False, None),
        Outcome(90.0, None, False, "TransportError: gone"),
    )
    boot = endpoint.draws.cold(0)
    calls = (("POST", "run", 200), ("GET", "stream", 200), ("GET", "stream", 200))
    replay = Replay(outcomes, (_entry("a", 150, boot),), calls, 0, 100.0, 0.1)

    run = run_of(trace, Policy("p", "swarmpod", 60.0), endpoint, replay)

    assert (run.requests, run.ok, run.billed_s, run.boots) == (4, 3, 150, 1)
    assert run.boots_as_drawn
    assert (run.added_p50_s, run.added_p95_s) == (10.0, 80.0)
    assert run.cold_generations == 1
    assert run.calls_per_cold_generation == 3.0
    assert run.calls_per_lease == 3.0
    assert run.calls_by_route == (("stream", 2), ("run", 1))
    assert run.failures == (("TransportError", 1),)
    assert run.floor.total_s == pytest.approx(16.0 + boot + 26.0 + 26.0 + 26.0)
    assert run.ratio == pytest.approx(150 / run.floor.total_s)
    mismatched = dataclasses.replace(replay, ledger=(_entry("a", 150, boot + 1.0),))
    assert not run_of(trace, Policy("p", "swarmpod", 60.0), endpoint, mismatched).boots_as_drawn


def _summary(policy: str, ratio: float, p50: float, *, trace: str = "interactive") -> Summary:
    def same(value: float) -> Spread:
        return Spread(value, value)

    return Summary(
        trace=trace,
        regime="cold",
        policy=policy,
        seeds=10,
        requests=48,
        failed=same(0),
        billed_s=same(1000 * ratio),
        floor_s=same(1000),
        ratio=same(ratio),
        added_p50_s=same(p50),
        added_p95_s=same(p50 + 60),
        floor_p50_s=0.0,
        calls_per_generation=same(1.0),
        calls_per_cold=Spread(5.0, 7.5),
        calls_per_lease=Spread(4.2, 4.6),
        cold_share=0.2,
        calls_by_route=(("stream", 3.0), ("run", 1.0)),
        boots=same(10),
    )


def test_a_point_is_off_the_frontier_only_when_another_is_cheaper_and_quicker() -> None:
    points = [
        _summary("swarmpod-auto", 1.5, 0.2),
        _summary("swarmpod-0s", 0.9, 70.0),  # cheaper, slower: both stay
        _summary("swarmpod-60s", 1.4, 0.2),  # cheaper, as quick: does not beat it
        _summary("seed-120s", 2.0, 5.0),  # beaten by the two cheaper and quicker
    ]
    marked = {point.policy: point for point in frontier(points)}
    assert marked["swarmpod-auto"].on_frontier
    assert marked["swarmpod-0s"].on_frontier
    assert marked["swarmpod-60s"].on_frontier
    assert marked["seed-120s"].beaten_by == ("swarmpod-auto", "swarmpod-60s")


def test_goals_judge_swarmpod_auto_and_say_why_a_goal_is_missed() -> None:
    summaries = [
        dataclasses.replace(_summary("swarmpod-auto", 2.5, 3.0, trace="sparse"), regime="cold"),
        dataclasses.replace(_summary("swarmpod-0s", 1.0, 2.0, trace="sparse"), regime="cold"),
        _summary("swarmpod-auto", 1.5, 0.4),
    ]
    marked = [*frontier(summaries[:2]), summaries[2]]
    judged = {goal.what: goal for goal in goals(marked, None)}

    frontier_goal = judged["swarmpod-auto sparse (FlashBoot never): on the cost/p50 frontier"]
    assert not frontier_goal.passed
    assert "beaten by swarmpod-0s 1.00x, p50 +2.0 s" in frontier_goal.reason
    cost = judged["swarmpod-auto sparse (FlashBoot never): GPU-s <= 2x the cost floor"]
    assert (cost.passed, cost.measured) == (False, 2.5)
    latency = judged["swarmpod-auto interactive (FlashBoot never): p50 added latency <= 1 s"]
    assert latency.passed
    calls = judged[
        "swarmpod-auto interactive (FlashBoot never): RunPod calls per cold generation, "
        "counted at the emulator, worst seed <= 6"
    ]
    assert (calls.passed, calls.measured) == (False, 7.5)
    assert "/stream 3.0, /run 1.0" in calls.reason
    assert "per job asked for (/run): 4.2, worst 4.6" in calls.reason


def test_issue_12_s_calls_goal_reads_seeds_1_to_5_with_flashboot_granted() -> None:
    by_seed = tuple((seed, 5.0 + seed / 10) for seed in range(1, 11))
    granted = dataclasses.replace(
        _summary("swarmpod-auto", 1.5, 0.4), regime="flashboot", calls_per_cold_by_seed=by_seed
    )
    never = dataclasses.replace(granted, regime="cold")
    judged = {goal.what: goal for goal in goals([granted, never], None)}
    early = judged[
        "swarmpod-auto interactive (FlashBoot granted, seeds 1-5, as issue 12 measured): RunPod "
        "calls per cold generation, counted at the emulator, worst seed <= 6"
    ]
    assert (early.passed, early.measured) == (True, 5.5)
    assert "seed 5 5.50" in early.reason
    assert not any("as issue 12 measured" in what and "never" in what for what in judged)


def _report() -> Report:
    trace = Trace("interactive", (0.0, 40.0), "two requests")
    runs = []
    for seed in (1, 2):
        endpoint = Endpoint("flashboot", seed=seed)
        for policy, billed in (("swarmpod-auto", 200), ("swarmpod-0s", 150)):
            outcomes = (Outcome(0.0, 80.0, True, None), Outcome(40.0, 4.2, False, None))
            ledger = (_entry("a", billed, endpoint.draws.cold(0)),)
            replay = Replay(outcomes, ledger, (("POST", "run", 200),) * 6, 0, 500.0, 0.2)
            runs.append(run_of(trace, Policy(policy, "swarmpod", 0.0), endpoint, replay))
    summaries = summarise(runs)
    return Report(tuple(runs), summaries, goals(summaries, None), checks(runs), None,
                  (trace,), (1, 2))  # fmt: skip


def test_the_tables_give_median_and_worst_per_policy_and_the_checks() -> None:
    report = _report()
    text = table(report)
    assert "interactive, FlashBoot granted: cost floor" in text
    assert "[PASS] runs billed below the cost floor at their own waits: 0.00 runs" in text
    assert "swarmpod-0s" in text and "seeds 1-2 (2)" in text
    lines = markdown(report).splitlines()
    header = next(index for index, line in enumerate(lines) if line.startswith("| policy"))
    assert lines[header + 2].startswith("| swarmpod-auto | 0 | 200 |")


def test_the_frontier_plot_is_a_standalone_svg_with_every_point(tmp_path: Path) -> None:
    report = _report()
    svg = frontier_svg(report, "interactive")
    root = ElementTree.fromstring(svg)  # well-formed XML
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    titles = [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}title")]
    assert any(title.startswith("swarmpod-auto:") for title in titles)
    assert any(title.startswith("swarmpod-0s:") for title in titles)
    assert [path.name for path in write_plots(report, tmp_path)] == ["frontier-interactive.svg"]


@pytest.mark.parametrize(
    "name",
    [
        "benchmarks._traces",
        "benchmarks._floor",
        "benchmarks._draws",
        "benchmarks._figures",
    ],
)
def test_docstring_examples_run(name: str) -> None:
    failures, _ = doctest.testmod(importlib.import_module(name))
    assert failures == 0


# --- a reduced run, end to end ----------------------------------------------------------------


@pytest.mark.slow
def test_a_reduced_run_measures_and_judges_every_trace_and_regime(tmp_path: Path) -> None:
    policies = [lease_policies.POLICIES[0], lease_policies.POLICIES[1], lease_policies.POLICIES[-2]]
    report = lease_policies.measure("small", seeds=(1,), policies=policies)

    assert len(report.runs) == 3 * 2 * len(policies)
    assert {(s.trace, s.regime) for s in report.summaries} == {
        (trace, regime) for trace in ("interactive", "batch", "sparse")
        for regime in ("flashboot", "cold")
    }  # fmt: skip
    assert all(check.passed for check in report.checks)
    assert any(
        goal.what.startswith("swarmpod-auto batch (FlashBoot never)") for goal in report.goals
    )
    assert len(write_plots(report, tmp_path)) == 3

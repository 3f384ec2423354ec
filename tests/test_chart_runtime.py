"""The light runtime runs a declared chart exactly as python-statemachine does.

Each chart is walked both ways — the declaration run by python-statemachine, and the light
instance swarmpod runs — through every (state, event) and along seeded random walks: the same
states, the same listener calls in the same order, the same refusals, the same attributes.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from statemachine import StateMachine

from statecharts import GenerationChart, TransitionNotAllowed, WorkerChart
from statecharts._runtime import Chart, ChartTable

CHARTS: list[type[Chart]] = [GenerationChart, WorkerChart]


class Log:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def on_enter_state(self, state: Any, event: Any) -> None:
        self.calls.append(("enter", str(state.id), str(event)))

    def on_exit_state(self, state: Any) -> None:
        self.calls.append(("exit", str(state.id), ""))


def both(light: type[Chart]) -> tuple[StateMachine, Chart, Log, Log]:
    library_log, light_log = Log(), Log()
    library = light.declared(listeners=[library_log])
    library_log.calls.clear()  # the library enters the initial state before listening
    light_chart = light(listeners=[light_log])
    light_log.calls.clear()
    return library, light_chart, library_log, light_log


def ids(chart: StateMachine | Chart) -> list[str]:
    return sorted(str(state.id) for state in chart.configuration)


def send(chart: StateMachine | Chart, event: str, failure: Exception) -> str:
    arguments: dict[str, Any] = {"failure": failure} if event in ("timeout", "error") else {}
    try:
        chart.send(event, **arguments)
    except TransitionNotAllowed:
        return "refused"
    return "taken"


def same(library: StateMachine, light: Chart, library_log: Log, light_log: Log) -> None:
    assert ids(light) == ids(library)
    assert light_log.calls == library_log.calls
    for attribute in ("outcome", "failure"):
        assert getattr(light, attribute, None) == getattr(library, attribute, None)


@pytest.mark.parametrize("light", CHARTS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("seed", range(40))
def test_random_walks_agree_step_by_step(light: type[Chart], seed: int) -> None:
    rng = random.Random(seed)
    events = sorted(ChartTable.of(light.declared).events)
    failure = RuntimeError("boom")
    library, chart, library_log, light_log = both(light)
    for _ in range(25):
        event = rng.choice(events)
        assert send(chart, event, failure) == send(library, event, failure), event
        same(library, chart, library_log, light_log)
        if chart.is_terminated:
            library, chart, library_log, light_log = both(light)


@pytest.mark.parametrize("light", CHARTS, ids=lambda c: c.__name__)
def test_every_reachable_state_answers_every_event_alike(light: type[Chart]) -> None:
    table = ChartTable.of(light.declared)
    events = sorted(table.events)
    failure = RuntimeError("boom")
    # Breadth-first over event paths: each reachable configuration, then every event from it.
    frontier: list[list[str]] = [[]]
    seen: set[tuple[str, ...]] = set()
    reached: set[str] = set()
    while frontier:
        path = frontier.pop(0)
        library, chart, library_log, light_log = both(light)
        for event in path:
            send(library, event, failure)
            send(chart, event, failure)
        key = (*ids(chart), str(getattr(chart, "outcome", "")))  # guards read the outcome
        if key in seen:
            continue
        seen.add(key)
        reached.add(chart.state_id)
        for event in events:
            library, chart, library_log, light_log = both(light)
            for step in path:
                send(library, step, failure)
                send(chart, step, failure)
            library_log.calls.clear()
            light_log.calls.clear()
            assert send(chart, event, failure) == send(library, event, failure)
            same(library, chart, library_log, light_log)
            frontier.append([*path, event])
    assert reached == {s.id for s in table.states.values() if not list(s.states)}


def test_a_light_chart_is_small_and_shares_its_table() -> None:
    first, second = GenerationChart(), GenerationChart()
    assert first._table is second._table
    assert set(vars(first)) <= {"_table", "_leaf", "_listeners", "outcome", "failure"}

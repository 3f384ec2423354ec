"""The generation chart: its legal paths, and every illegal event raising."""

from __future__ import annotations

import pytest

from statecharts import GenerationChart, Outcome, TransitionNotAllowed

NON_FINAL = ("idle", "waking", "polling", "ready", "generating")
ABORTS = ("timeout", "error", "cancel")

# The design card, written out: (state, event) -> next state. Anything else must raise.
LEGAL: dict[tuple[str, str], str] = {
    ("idle", "wake"): "waking",
    ("idle", "reuse_warm"): "ready",
    ("waking", "accepted"): "polling",
    ("polling", "worker_ready"): "ready",
    ("ready", "generate"): "generating",
    ("generating", "release"): "shutting_down",
    **{(state, abort): "shutting_down" for state in NON_FINAL for abort in ABORTS},
}
EVENTS = sorted({event for _, event in LEGAL} | {"released"})

# Events that bring a fresh chart into each state.
ROUTE_TO: dict[str, list[str]] = {
    "idle": [],
    "waking": ["wake"],
    "polling": ["wake", "accepted"],
    "ready": ["wake", "accepted", "worker_ready"],
    "generating": ["wake", "accepted", "worker_ready", "generate"],
    "shutting_down": ["wake", "accepted", "worker_ready", "generate", "release"],
    "done": ["wake", "accepted", "worker_ready", "generate", "release", "released"],
    "failed": ["wake", "error", "released"],
    "cancelled": ["cancel", "released"],
}


def chart_in(state: str) -> GenerationChart:
    chart = GenerationChart()
    for event in ROUTE_TO[state]:
        chart.send(event)
    assert chart.state_id == state
    return chart


def test_cold_start_happy_path_visits_the_design_card_states_in_order() -> None:
    chart = GenerationChart()
    seen = [chart.state_name]
    for event in ("wake", "accepted", "worker_ready", "generate", "release", "released"):
        chart.send(event)
        seen.append(chart.state_name)
    assert seen == [
        "Idle",
        "Waking",
        "Polling",
        "Ready",
        "Generating",
        "ShuttingDown",
        "Done",
    ]
    assert chart.outcome is Outcome.SUCCEEDED
    assert chart.is_terminated


def test_warm_reuse_skips_waking_and_polling() -> None:
    chart = GenerationChart()
    for event in ("reuse_warm", "generate", "release", "released"):
        chart.send(event)
    assert chart.state_id == "done"


@pytest.mark.parametrize("state", NON_FINAL)
@pytest.mark.parametrize("abort", ABORTS)
def test_every_non_final_state_aborts_through_shutting_down(state: str, abort: str) -> None:
    chart = chart_in(state)
    failure = RuntimeError("boom")
    if abort == "cancel":
        chart.send(abort)
    else:
        chart.send(abort, failure=failure)
    assert chart.state_id == "shutting_down"
    chart.send("released")
    expected = "cancelled" if abort == "cancel" else "failed"
    assert chart.state_id == expected
    assert chart.failure is (None if abort == "cancel" else failure)


@pytest.mark.parametrize("state", list(ROUTE_TO))
@pytest.mark.parametrize("event", EVENTS)
def test_each_event_is_legal_exactly_where_the_card_says(state: str, event: str) -> None:
    chart = chart_in(state)
    if state == "shutting_down" and event == "released":
        chart.send(event)
        assert chart.state_id == "done"
    elif (state, event) in LEGAL:
        chart.send(event)
        assert chart.state_id == LEGAL[(state, event)]
    else:
        with pytest.raises(TransitionNotAllowed):
            chart.send(event)
        assert chart.state_id == state


def test_unknown_events_raise_instead_of_passing_silently() -> None:
    with pytest.raises(TransitionNotAllowed):
        GenerationChart().send("teleport")


def test_no_event_name_shadows_a_state_name() -> None:
    states = {state.id for state in GenerationChart.states}
    events = {event.id for event in GenerationChart.events}
    assert not states & events

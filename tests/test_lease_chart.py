"""The lease chart: its legal paths, and every illegal event raising."""

from __future__ import annotations

import pytest

from statecharts import LeaseChart, TransitionNotAllowed

LIVE = ("requested", "queued", "booting", "idle", "busy", "draining")

# The design card, written out: (state, event) -> next state. Anything else must raise.
LEGAL: dict[tuple[str, str], str] = {
    ("requested", "submitted"): "queued",
    ("queued", "assigned"): "booting",
    ("booting", "leased"): "idle",
    ("idle", "take"): "busy",
    ("busy", "free"): "idle",
    ("queued", "release"): "draining",
    ("booting", "release"): "draining",
    ("idle", "release"): "draining",
    ("busy", "release"): "draining",
    ("draining", "ended"): "released",
    ("idle", "ended"): "released",
    ("busy", "ended"): "released",
    **{(state, "lose"): "lost" for state in LIVE},
}
EVENTS = sorted({event for _, event in LEGAL})

ROUTE_TO: dict[str, list[str]] = {
    "requested": [],
    "queued": ["submitted"],
    "booting": ["submitted", "assigned"],
    "idle": ["submitted", "assigned", "leased"],
    "busy": ["submitted", "assigned", "leased", "take"],
    "draining": ["submitted", "assigned", "leased", "release"],
    "released": ["submitted", "assigned", "leased", "release", "ended"],
    "lost": ["lose"],
}


def chart_in(state: str) -> LeaseChart:
    chart = LeaseChart()
    for event in ROUTE_TO[state]:
        chart.send(event)
    assert chart.state_id == state
    return chart


def test_a_lease_that_serves_two_generations_visits_the_card_in_order() -> None:
    chart = LeaseChart()
    seen = [chart.state_name]
    for event in ("submitted", "assigned", "leased", "take", "free", "take", "free", "release"):
        chart.send(event)
        seen.append(chart.state_name)
    chart.send("ended")
    seen.append(chart.state_name)
    assert seen == [
        "Requested",
        "Queued",
        "Booting",
        "Idle",
        "Busy",
        "Idle",
        "Busy",
        "Idle",
        "Draining",
        "Released",
    ]
    assert chart.is_terminated


def test_a_queued_lease_is_withdrawn_through_draining() -> None:
    chart = chart_in("queued")
    chart.send("release")
    chart.send("ended")
    assert chart.state_id == "released"


def test_the_worker_may_end_a_warm_lease_itself() -> None:
    chart = chart_in("idle")
    chart.send("ended")
    assert chart.state_id == "released"


def test_warm_covers_idle_and_busy_only() -> None:
    assert [chart_in(s).is_warm for s in ROUTE_TO] == [s in ("idle", "busy") for s in ROUTE_TO]


@pytest.mark.parametrize("state", sorted(ROUTE_TO))
@pytest.mark.parametrize("event", EVENTS)
def test_every_state_event_pair_moves_as_the_card_says_or_raises(state: str, event: str) -> None:
    chart = chart_in(state)
    expected = LEGAL.get((state, event))
    if expected is None:
        with pytest.raises(TransitionNotAllowed):
            chart.send(event)
        assert chart.state_id == state
    else:
        chart.send(event)
        assert chart.state_id == expected


def test_final_states_are_released_and_lost() -> None:
    assert chart_in("released").is_terminated
    assert chart_in("lost").is_terminated
    assert not any(chart_in(state).is_terminated for state in LIVE)

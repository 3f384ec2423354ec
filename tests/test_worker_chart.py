"""The worker chart: every (state, event) pair, legal ones going where the card says, every
other one raising; the same chart for v1 and v2 workers."""

from __future__ import annotations

import pytest

from statecharts import TransitionNotAllowed, WorkerChart

# The card, written out: (state, event) -> next state. Anything else must raise.
LIVE = (
    "requested", "queued", "withdrawing", "booting", "stalled", "loading", "idle", "busy",
    "retiring", "draining",
)  # fmt: skip
LEGAL: dict[tuple[str, str], str] = {
    ("requested", "submitted"): "queued",
    ("queued", "assigned"): "booting",
    ("withdrawing", "assigned"): "booting",
    ("queued", "withdraw"): "withdrawing",
    ("withdrawing", "withdrawn"): "released",
    ("queued", "stall"): "stalled",
    ("booting", "stall"): "stalled",
    ("queued", "handed_over"): "loading",
    ("booting", "handed_over"): "loading",
    ("stalled", "handed_over"): "loading",
    ("loading", "loaded"): "idle",
    ("idle", "take"): "busy",
    ("busy", "free"): "idle",
    ("idle", "retire"): "retiring",
    ("busy", "retire"): "retiring",
    **{(state, "release"): "draining" for state in ("queued", "booting", "stalled", "loading")},
    **{(state, "release"): "draining" for state in ("idle", "busy", "retiring")},
    **{(state, "ended"): "released" for state in ("draining", "idle", "busy", "retiring")},
    **{(state, "lose"): "lost" for state in LIVE},
}
EVENTS = sorted({event for _, event in LEGAL})

ROUTE_TO: dict[str, list[str]] = {
    "requested": [],
    "queued": ["submitted"],
    "withdrawing": ["submitted", "withdraw"],
    "booting": ["submitted", "assigned"],
    "stalled": ["submitted", "assigned", "stall"],
    "loading": ["submitted", "assigned", "handed_over"],
    "idle": ["submitted", "assigned", "handed_over", "loaded"],
    "busy": ["submitted", "assigned", "handed_over", "loaded", "take"],
    "retiring": ["submitted", "assigned", "handed_over", "loaded", "take", "retire"],
    "draining": ["submitted", "assigned", "handed_over", "loaded", "release"],
    "released": ["submitted", "withdraw", "withdrawn"],
    "lost": ["lose"],
}

# The two protocols drive the same chart: the events each sends over a worker's whole life.
V2_LEASE = ["submitted", "handed_over", "loaded", "take", "free", "release", "ended"]
V1_WAKEUP = ["submitted", "assigned", "handed_over", "loaded", "take", "free", "release", "ended"]


def chart_in(state: str) -> WorkerChart:
    chart = WorkerChart()
    for event in ROUTE_TO[state]:
        chart.send(event)
    assert chart.state_id == state
    return chart


@pytest.mark.parametrize("state", sorted(ROUTE_TO))
@pytest.mark.parametrize("event", EVENTS)
def test_every_state_and_event_goes_where_the_card_says_or_raises(state: str, event: str) -> None:
    chart = chart_in(state)
    expected = LEGAL.get((state, event))
    if expected is None:
        with pytest.raises(TransitionNotAllowed):
            chart.send(event)
        assert chart.state_id == state  # a refused event changes nothing
    else:
        chart.send(event)
        assert chart.state_id == expected


@pytest.mark.parametrize("events", [V2_LEASE, V1_WAKEUP], ids=["v2 lease", "v1 wake-up"])
def test_both_protocols_walk_the_same_chart_to_released(events: list[str]) -> None:
    chart = WorkerChart()
    seen = [chart.state_name]
    for event in events:
        chart.send(event)
        seen.append(chart.state_name)
    assert seen[-1] == "Released" and chart.is_terminated and not chart.is_live
    assert "Idle" in seen and "Busy" in seen and "Draining" in seen


def test_warm_holds_idle_and_busy_as_its_substates() -> None:
    chart = chart_in("busy")
    assert [state.id for state in chart.configuration] == ["warm", "busy"]
    assert chart.is_warm and chart.is_in("warm") and not chart.is_in("idle")


def test_a_queued_request_taken_back_too_late_is_kept_booting() -> None:
    chart = chart_in("withdrawing")
    chart.send("assigned")  # RunPod had started a worker for it: it bills, so it is used
    assert chart.state_id == "booting"


def test_a_stalled_worker_whose_lease_arrives_after_all_loads() -> None:
    chart = chart_in("stalled")
    chart.send("handed_over")
    chart.send("loaded")
    assert chart.is_warm

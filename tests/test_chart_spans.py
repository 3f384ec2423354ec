"""The span listener on its own: a span per state visited, nested like the states."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from observability import ChartSpans, Telemetry
from statecharts import GenerationChart, WorkerChart


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    telemetry = Telemetry.configure(in_memory=True, otlp=False)
    yield telemetry
    telemetry.shutdown()


def test_it_is_silent_until_started(telemetry: Telemetry) -> None:
    spans = ChartSpans(telemetry.tracer)
    chart = GenerationChart(listeners=[spans])
    chart.send("wake")
    assert telemetry.finished_spans() == () and telemetry.open_spans() == []
    assert spans.recording is False


def test_each_state_is_a_child_span_and_final_states_end_on_entry(telemetry: Telemetry) -> None:
    spans = ChartSpans(telemetry.tracer)
    chart = GenerationChart(listeners=[spans])
    root = telemetry.tracer.start_span("Generation:m")
    spans.start(root, chart, lambda state: f"{state}:x" if state == "Waking" else state)
    for event in ("wake", "accepted", "worker_ready", "generate", "release", "released"):
        chart.send(event)
    assert telemetry.open_spans() == ["Generation:m"]  # the root is its owner's to end
    root.end()

    names = [span.name for span in telemetry.finished_spans() if span.name != "Generation:m"]
    assert names == [
        "Idle",
        "Waking:x",
        "Polling",
        "Ready",
        "Generating",
        "ShuttingDown",
        "Done",
    ]
    done = telemetry.finished_spans()[-2]
    assert done.start_time == done.end_time
    entered_by = {
        s.name: (s.attributes or {}).get("swarmpod.event") for s in telemetry.finished_spans()
    }
    assert entered_by["Polling"] == "accepted"


def test_substates_nest_under_their_parent_state(telemetry: Telemetry) -> None:
    spans = ChartSpans(telemetry.tracer)
    chart = WorkerChart(listeners=[spans])
    root = telemetry.tracer.start_span("Lease:ep")
    spans.start(root, chart)
    for event in ("submitted", "assigned", "handed_over", "loaded", "take"):
        chart.send(event)
    spans.add_event("runpod.stream", {"http.status": 200})
    spans.close()  # ends Busy and Warm, innermost first
    root.end()

    by_name = {span.name: span for span in telemetry.finished_spans()}
    warm, busy = by_name["Warm"], by_name["Busy"]
    assert busy.parent is not None and warm.context is not None
    assert busy.parent.span_id == warm.context.span_id
    assert [event.name for event in busy.events] == ["runpod.stream"]
    assert telemetry.open_spans() == []

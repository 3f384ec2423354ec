"""Light state spans: made without the SDK's per-span work, exported exactly as the SDK's.

Each scenario runs twice on its own configured telemetry, once through the SDK (a
:class:`ChartSpans` without a recorder) and once with light spans; what every exporter sees
(the in-memory spans, the OTLP protobuf request, the JSON-lines file) must be the same, ids
aside (random on both sides: they are compared by the order they first appear in).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    StatusCode,
    TraceFlags,
    TraceState,
)

from observability import ChartSpans, Telemetry
from observability._light_span import LightSpan
from statecharts import GenerationChart, WorkerChart

T0 = 1_750_000_000_000_000_000
CALLER = SpanContext(
    trace_id=0x0AF7651916CD43DD8448EB211C80319C,
    span_id=0xB7AD6B7169203331,
    is_remote=True,
    trace_flags=TraceFlags(TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID),
    trace_state=TraceState([("vendor", "value")]),
)


def _worker_life(telemetry: Telemetry, spans: ChartSpans, clock: Callable[[], int]) -> None:
    """A worker's chart with nested states, and every call a caller may make on a state span."""
    chart = WorkerChart(listeners=[spans])
    root = telemetry.tracer.start_span(
        "Lease:ep",
        context=trace.set_span_in_context(NonRecordingSpan(CALLER)),
        start_time=clock(),
        attributes={"swarmpod.endpoint.id": "ep"},
    )
    spans.start(root, chart)
    for event in ("submitted", "assigned", "handed_over", "loaded"):
        chart.send(event)
    spans.add_event("runpod.status", {"http.status": 200, "attempt": 1, "ok": True})
    chart.send("take")
    busy = spans.current
    assert busy is not None
    busy.set_attribute("swarmpod.phase", "Busy")  # set again: it moves last, as in the SDK
    busy.set_attributes({"tags": ["a", "b"], "weight": 0.5})
    spans.add_event("progress", {"percent": 0.25, "image": 0})
    spans.add_event("odd", {"steps": (1, 2), "label": "x" * 12})
    busy.add_link(root.get_span_context(), {"why": "test"})
    busy.update_name("Busy:renamed")
    busy.set_status(StatusCode.ERROR, "boom")
    busy.set_status(StatusCode.UNSET)  # ignored
    busy.record_exception(ValueError("bad"), timestamp=clock())
    for tick in range(5):
        spans.add_event("tick", {"n": tick})
    chart.send("free")
    chart.send("take")
    spans.close()
    busy.end(end_time=clock())  # already ended: ignored
    busy.set_attribute("late", 1)  # ended: ignored
    root.end(end_time=clock())


def _generation(telemetry: Telemetry, spans: ChartSpans, clock: Callable[[], int]) -> None:
    """A generation's chart from Idle to Done, with progress events on Generating."""
    chart = GenerationChart(listeners=[spans])
    root = telemetry.tracer.start_span("Generation:m", start_time=clock())
    spans.start(root, chart, lambda state: f"{state}:x" if state == "Generating" else state)
    for event in ("wake", "accepted", "worker_ready", "generate"):
        chart.send(event)
    for step in range(4):
        spans.add_event("progress", {"percent": step / 4, "image": 0})
    for event in ("release", "released"):
        chart.send(event)
    root.end(end_time=clock())


Scenario = Callable[[Telemetry, ChartSpans, Callable[[], int]], None]


def _run(tmp_path: Path, scenario: Scenario, *, light: bool) -> tuple[Telemetry, Path]:
    trace_file = tmp_path / f"{'light' if light else 'sdk'}.jsonl"
    telemetry = Telemetry.configure(in_memory=True, otlp=False, trace_file=trace_file)
    clock = itertools.count(T0, 1_000).__next__
    recorder = telemetry.span_recorder if light else None
    assert not light or recorder is not None
    spans = ChartSpans(telemetry.tracer, clock, recorder=recorder)
    scenario(telemetry, spans, clock)
    assert telemetry.open_spans() == []
    telemetry.flush()
    return telemetry, trace_file


class _Ids:
    """Replaces random ids by the order they first appear in."""

    def __init__(self) -> None:
        self._seen: dict[object, int] = {}

    def __call__(self, value: object) -> int:
        return self._seen.setdefault(value, len(self._seen))


def _memory_view(spans: tuple[ReadableSpan, ...]) -> list[dict[str, Any]]:
    ids = _Ids()

    def context(ctx: SpanContext | None) -> object:
        if ctx is None:
            return None
        return (ids(ctx.trace_id), ids(ctx.span_id), int(ctx.trace_flags), ctx.trace_state)

    return [
        {
            "name": span.name,
            "context": context(span.context),
            "parent": context(span.parent),
            "kind": span.kind,
            "start": span.start_time,
            "end": span.end_time,
            "status": (span.status.status_code, span.status.description),
            "attributes": list((span.attributes or {}).items()),
            "dropped": (span.dropped_attributes, span.dropped_events, span.dropped_links),
            "events": [
                (e.name, e.timestamp, list((e.attributes or {}).items()), e.dropped_attributes)
                for e in span.events
            ],
            "links": [(context(link.context), dict(link.attributes or {})) for link in span.links],
            "resource": dict(span.resource.attributes),
            "scope": span.instrumentation_scope,
        }
        for span in spans
    ]


def _otlp_view(spans: tuple[ReadableSpan, ...]) -> ExportTraceServiceRequest:
    """The OTLP request the exporter sends, ids replaced by their order of appearance."""
    ids = _Ids()

    def seen(value: bytes) -> bytes:
        return ids(value).to_bytes(2, "big") if value else b""

    request = encode_spans(spans)
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                span.trace_id, span.span_id = seen(span.trace_id), seen(span.span_id)
                span.parent_span_id = seen(span.parent_span_id)
                for link in span.links:
                    link.trace_id, link.span_id = seen(link.trace_id), seen(link.span_id)
    return request


def _file_view(path: Path) -> list[dict[str, Any]]:
    ids = _Ids()
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for record in records:
        for key in ("trace_id", "span_id", "parent_span_id"):
            record[key] = ids(record[key])
    return records


@pytest.fixture
def compare(tmp_path: Path) -> Iterator[Callable[[Scenario], list[ReadableSpan]]]:
    made: list[Telemetry] = []

    def compare(scenario: Scenario) -> list[ReadableSpan]:
        sdk, sdk_file = _run(tmp_path, scenario, light=False)
        light, light_file = _run(tmp_path, scenario, light=True)
        made.extend((sdk, light))
        assert _memory_view(light.finished_spans()) == _memory_view(sdk.finished_spans())
        assert _otlp_view(light.finished_spans()) == _otlp_view(sdk.finished_spans())
        assert _file_view(light_file) == _file_view(sdk_file)
        return list(light.finished_spans())

    yield compare
    for telemetry in made:
        telemetry.shutdown()


def test_a_light_state_span_exports_what_the_sdk_span_of_the_same_state_does(
    compare: Callable[[Scenario], list[ReadableSpan]],
) -> None:
    spans = compare(_worker_life)
    busy = next(span for span in spans if span.name == "Busy:renamed")
    assert [e.name for e in busy.events][:4] == ["progress", "odd", "exception", "tick"]
    assert busy.status.status_code is StatusCode.ERROR and len(busy.links) == 1
    assert busy.context is not None and busy.context.trace_state == CALLER.trace_state


def test_a_generation_exports_the_same_spans_and_events_either_way(
    compare: Callable[[Scenario], list[ReadableSpan]],
) -> None:
    spans = compare(_generation)
    names = [span.name for span in spans]
    assert names == [
        "Idle",
        "Waking",
        "Polling",
        "Ready",
        "Generating:x",
        "ShuttingDown",
        "Done",
        "Generation:m",
    ]
    assert [e.attributes for e in spans[4].events][1] == {"percent": 0.25, "image": 0}


def test_the_span_limits_drop_and_truncate_alike(
    compare: Callable[[Scenario], list[ReadableSpan]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SPAN_EVENT_COUNT_LIMIT", "3")
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "3")
    monkeypatch.setenv("OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", "2")
    monkeypatch.setenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "5")
    spans = compare(_worker_life)
    busy = next(span for span in spans if span.name == "Busy:renamed")
    assert busy.dropped_events > 0 and busy.dropped_attributes > 0
    assert [e.name for e in busy.events] == ["tick", "tick", "tick"]


def test_light_spans_are_counted_open_until_they_end(tmp_path: Path) -> None:
    telemetry = Telemetry.configure(in_memory=True, otlp=False)
    spans = ChartSpans(telemetry.tracer, recorder=telemetry.span_recorder)
    chart = WorkerChart(listeners=[spans])
    root = telemetry.tracer.start_span("Lease:ep")
    spans.start(root, chart)
    for event in ("submitted", "assigned", "handed_over", "loaded", "take"):
        chart.send(event)
    assert isinstance(spans.current, LightSpan)
    assert telemetry.open_spans() == ["Busy", "Lease:ep", "Warm"]
    spans.close()
    assert telemetry.open_spans() == ["Lease:ep"]
    root.end()
    assert telemetry.open_spans() == []
    telemetry.shutdown()


@pytest.mark.parametrize("sampler", ["always_on", "traceidratio", "parentbased_always_off"])
def test_a_sampler_that_may_decide_otherwise_keeps_the_sdk_path(
    sampler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", sampler)
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "1.0")
    telemetry = Telemetry.configure(in_memory=True, otlp=False)
    if sampler == "parentbased_always_off":  # children of a sampled parent: always sampled
        assert telemetry.span_recorder is not None
        root = telemetry.tracer.start_span("Lease:ep")  # a root it does not sample
        assert not root.get_span_context().trace_flags.sampled
    else:
        assert telemetry.span_recorder is None
        root = telemetry.tracer.start_span("Lease:ep")
    spans = ChartSpans(telemetry.tracer, recorder=telemetry.span_recorder)
    spans.start(root, WorkerChart(listeners=[spans]))
    assert not isinstance(spans.current, LightSpan)
    assert isinstance(spans.current, SdkSpan) == root.is_recording()
    spans.close()
    root.end()
    telemetry.shutdown()


def test_telemetry_through_the_global_providers_has_no_recorder() -> None:
    assert Telemetry.disabled().span_recorder is None


def test_a_light_span_says_its_name_and_ids_and_no_attribute(tmp_path: Path) -> None:
    telemetry = Telemetry.configure(in_memory=True, otlp=False)
    recorder = telemetry.span_recorder
    assert recorder is not None
    root = telemetry.tracer.start_span("Generation:m")
    span = recorder.start_child(
        "Ready", root.get_span_context(), {"swarmpod.token": "s3cr3t-value"}, T0
    )
    assert "s3cr3t-value" not in repr(span) and "Ready" in repr(span)
    span.end(end_time=T0)
    root.end()
    telemetry.shutdown()


def test_an_exception_leaving_a_light_span_is_recorded_as_the_sdk_does(tmp_path: Path) -> None:
    def raising(telemetry: Telemetry, spans: ChartSpans, clock: Callable[[], int]) -> None:
        root = telemetry.tracer.start_span("Lease:ep", start_time=clock())
        spans.start(root, WorkerChart(listeners=[spans]))
        with pytest.raises(RuntimeError), spans.current:  # type: ignore[union-attr]
            raise RuntimeError("it broke")
        root.end(end_time=clock())

    sdk, _ = _run(tmp_path, raising, light=False)
    light, _ = _run(tmp_path, raising, light=True)

    def view(telemetry: Telemetry) -> list[object]:
        state = telemetry.finished_spans()[0]
        event = state.events[0]
        attributes = dict(event.attributes or {})
        attributes.pop("exception.stacktrace")  # its line numbers differ, its form does not
        return [state.status.status_code, state.status.description, event.name, attributes]

    assert view(light) == view(sdk)
    sdk.shutdown()
    light.shutdown()

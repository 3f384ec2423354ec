"""Light spans: made without the SDK's per-span work, exported exactly as the SDK's.

Each scenario runs twice on its own configured telemetry, once through the SDK (roots from
``tracer.start_span``, a :class:`ChartSpans` without a recorder) and once with light spans
(roots from ``Telemetry.start_span``, the telemetry's recorder); what every exporter sees
(the in-memory spans, the OTLP protobuf request, the JSON-lines file) must be the same, ids
aside (random on both sides: they are compared by the order they first appear in).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)
from opentelemetry.util.types import AttributeValue

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


@dataclass
class Side:
    """One side of a comparison: where spans go, how roots start, the state-span listener."""

    telemetry: Telemetry
    spans: ChartSpans
    clock: Callable[[], int]
    light: bool

    def root(
        self,
        name: str,
        context: Context | None = None,
        attributes: dict[str, AttributeValue] | None = None,
    ) -> Span:
        start = self.telemetry.start_span if self.light else self.telemetry.tracer.start_span
        return start(name, context=context, attributes=attributes, start_time=self.clock())


def _worker_life(side: Side) -> None:
    """A worker's chart with nested states under a remote caller, and every call a caller may
    make on a state span."""
    spans, clock = side.spans, side.clock
    chart = WorkerChart(listeners=[spans])
    root = side.root(
        "Lease:ep",
        context=trace.set_span_in_context(NonRecordingSpan(CALLER)),
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


def _generation(side: Side) -> None:
    """A generation's chart from Idle to Done (a trace of its own), with progress events on
    Generating and the outcome on the root."""
    spans, clock = side.spans, side.clock
    chart = GenerationChart(listeners=[spans])
    root = side.root("Generation:m", attributes={"swarmpod.user": "ann", "swarmpod.images": 2})
    spans.start(root, chart, lambda state: f"{state}:x" if state == "Generating" else state)
    for event in ("wake", "accepted", "worker_ready", "generate"):
        chart.send(event)
    for step in range(4):
        spans.add_event("progress", {"percent": step / 4, "image": 0})
    for event in ("release", "released"):
        chart.send(event)
    root.set_attributes({"swarmpod.outcome": "failed", "swarmpod.images": 1})
    root.set_status(Status(StatusCode.ERROR, "GenerationFailedError"))
    root.set_attribute("error.type", "GenerationFailedError")
    root.end(end_time=clock())


def _in_a_request(side: Side) -> None:
    """A generation's root as the child of the service request's (local) span."""
    request = side.telemetry.tracer.start_span(
        "POST /API/GenerateText2Image", start_time=side.clock()
    )
    _generation_under(side, trace.set_span_in_context(request))
    request.end(end_time=side.clock())


def _generation_under(side: Side, context: Context) -> None:
    root = side.root("Generation:m", context=context)
    side.spans.start(root, GenerationChart(listeners=[side.spans]))
    side.spans.close()
    root.end(end_time=side.clock())


Scenario = Callable[[Side], None]


def _run(tmp_path: Path, scenario: Scenario, *, light: bool) -> tuple[Telemetry, Path]:
    trace_file = tmp_path / f"{'light' if light else 'sdk'}.jsonl"
    telemetry = Telemetry.configure(in_memory=True, otlp=False, trace_file=trace_file)
    clock = itertools.count(T0, 1_000).__next__
    recorder = telemetry.span_recorder if light else None
    assert not light or recorder is not None
    spans = ChartSpans(telemetry.tracer, clock, recorder=recorder)
    scenario(Side(telemetry, spans, clock, light))
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


def test_a_root_under_a_local_parent_exports_the_same_either_way(
    compare: Callable[[Scenario], list[ReadableSpan]],
) -> None:
    request, root = compare(_in_a_request)[-2:][::-1]
    assert root.parent is not None and request.context is not None
    assert root.parent.span_id == request.context.span_id


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
    root = telemetry.start_span("Lease:ep")
    assert isinstance(root, LightSpan)
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


@pytest.mark.parametrize(
    "sampler",
    ["always_on", "traceidratio", "parentbased_always_off", "parentbased_traceidratio"],
)
def test_a_sampler_that_may_decide_otherwise_keeps_the_sdk_path(
    sampler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", sampler)
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "1.0")
    telemetry = Telemetry.configure(in_memory=True, otlp=False)
    root = telemetry.start_span("Lease:ep")  # the sampler decides about a root
    assert not isinstance(root, LightSpan)
    if sampler.startswith("parentbased_"):  # children of a sampled parent: always sampled
        assert telemetry.span_recorder is not None
    else:
        assert telemetry.span_recorder is None
    spans = ChartSpans(telemetry.tracer, recorder=telemetry.span_recorder)
    spans.start(root, WorkerChart(listeners=[spans]))
    sampled = root.get_span_context().trace_flags.sampled
    light = telemetry.span_recorder is not None and sampled
    assert isinstance(spans.current, LightSpan) == light
    assert isinstance(spans.current, SdkSpan) == (root.is_recording() and not light)
    spans.close()
    root.end()
    telemetry.shutdown()


def test_a_child_of_a_caller_that_did_not_sample_is_not_recorded() -> None:
    telemetry = Telemetry.configure(in_memory=True, otlp=False)
    unsampled = SpanContext(CALLER.trace_id, CALLER.span_id, True, TraceFlags(0))
    root = telemetry.start_span(
        "Generation:m", context=trace.set_span_in_context(NonRecordingSpan(unsampled))
    )
    assert not root.is_recording() and not root.get_span_context().trace_flags.sampled
    root.end()
    assert telemetry.finished_spans() == () and telemetry.open_spans() == []
    telemetry.shutdown()


def test_the_sdks_own_span_metrics_keep_the_sdk_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "true")
    telemetry = Telemetry.configure(in_memory=True, otlp=False)
    assert telemetry.span_recorder is None
    telemetry.shutdown()


def test_telemetry_through_the_global_providers_has_no_recorder() -> None:
    telemetry = Telemetry.disabled()
    assert telemetry.span_recorder is None
    assert not telemetry.start_span("Generation:m").is_recording()  # no provider set


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
    def raising(side: Side) -> None:
        root = side.root("Lease:ep")
        side.spans.start(root, WorkerChart(listeners=[side.spans]))
        with pytest.raises(RuntimeError), side.spans.current:  # type: ignore[union-attr]
            raise RuntimeError("it broke")
        root.end(end_time=side.clock())

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

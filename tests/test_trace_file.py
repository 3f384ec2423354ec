"""The JSON-lines trace file: what the real OpenTelemetry SDK exports is what the reader returns."""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExportResult,
)
from opentelemetry.trace import SpanKind, Status, StatusCode

from observability._trace_file import (
    JsonLinesSpanExporter,
    SpanEventRecord,
    SpanRecord,
    read_trace_file,
)

T0 = 1_750_000_000_000_000_000  # ns since the epoch
RESOURCE = {"service.name": "swarmpod-test", "deployment.environment": "ci"}


def _provider(path: Path, *, batch: bool = False) -> TracerProvider:
    provider = TracerProvider(resource=Resource(RESOURCE))
    exporter = JsonLinesSpanExporter(path)
    processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    return provider


@pytest.fixture
def trace_path(tmp_path: Path) -> Path:
    return tmp_path / "traces" / "trace.jsonl"


@pytest.fixture
def provider(trace_path: Path) -> Iterator[TracerProvider]:
    provider = _provider(trace_path)
    yield provider
    provider.shutdown()


def _one_span(provider: TracerProvider, name: str) -> None:
    provider.get_tracer("test").start_span(name, start_time=T0).end(end_time=T0 + 1)


@pytest.mark.parametrize("batch", [False, True], ids=["simple", "batch"])
def test_every_field_survives_the_round_trip(trace_path: Path, batch: bool) -> None:
    provider = _provider(trace_path, batch=batch)
    tracer = provider.get_tracer("test")
    root = tracer.start_span(
        "Generation:sdxl-base",
        kind=SpanKind.SERVER,
        start_time=T0,
        attributes={
            "swarmpod.user": "alice",
            "swarmpod.images": 2,
            "swarmpod.startup_s": 41.5,
            "swarmpod.cold_start": True,
            "swarmpod.tags": ["a", "b"],
        },
    )
    child = tracer.start_span(
        "Polling:runpod",
        context=trace.set_span_in_context(root),
        start_time=T0 + 1_000,
        attributes={"swarmpod.phase": "Polling"},
    )
    child.add_event("poll", {"status": "IN_QUEUE", "attempt": 3}, timestamp=T0 + 2_000)
    child.add_event("poll", timestamp=T0 + 3_000)
    child.set_status(Status(StatusCode.ERROR, "worker lost"))
    child.end(end_time=T0 + 5_000)
    root.set_status(Status(StatusCode.OK))
    root.end(end_time=T0 + 9_000_000_000)
    provider.shutdown()

    root_context, child_context = root.get_span_context(), child.get_span_context()
    trace_id = format(root_context.trace_id, "032x")
    root_id = format(root_context.span_id, "016x")
    assert read_trace_file(trace_path) == [
        SpanRecord(
            name="Polling:runpod",
            trace_id=trace_id,
            span_id=format(child_context.span_id, "016x"),
            parent_span_id=root_id,
            kind="INTERNAL",
            start_ns=T0 + 1_000,
            end_ns=T0 + 5_000,
            status="ERROR",
            status_description="worker lost",
            attributes={"swarmpod.phase": "Polling"},
            events=(
                SpanEventRecord("poll", T0 + 2_000, {"status": "IN_QUEUE", "attempt": 3}),
                SpanEventRecord("poll", T0 + 3_000, {}),
            ),
            resource=RESOURCE,
        ),
        SpanRecord(
            name="Generation:sdxl-base",
            trace_id=trace_id,
            span_id=root_id,
            parent_span_id=None,
            kind="SERVER",
            start_ns=T0,
            end_ns=T0 + 9_000_000_000,
            status="OK",
            status_description=None,
            attributes={
                "swarmpod.user": "alice",
                "swarmpod.images": 2,
                "swarmpod.startup_s": 41.5,
                "swarmpod.cold_start": True,
                "swarmpod.tags": ["a", "b"],
            },
            events=(),
            resource=RESOURCE,
        ),
    ]


def test_a_record_gives_seconds_and_typed_attributes(trace_path: Path) -> None:
    provider = _provider(trace_path)
    span = provider.get_tracer("test").start_span(
        "Generation:flux",
        start_time=T0,
        attributes={"swarmpod.cold_start": True, "swarmpod.images": 2, "swarmpod.user": "bob"},
    )
    span.end(end_time=T0 + 2_500_000_000)
    provider.shutdown()
    [record] = read_trace_file(trace_path)
    assert record.start_s == T0 / 1e9
    assert record.duration_s == 2.5
    assert record.attr("swarmpod.user") == "bob"
    assert record.attr("missing", "fallback") == "fallback"
    assert record.attr_float("swarmpod.images") == 2.0
    assert record.attr_float("swarmpod.cold_start") is None  # a boolean is not a number
    assert record.attr_bool("swarmpod.cold_start") is True
    assert record.attr_str("swarmpod.images") == "2"
    assert not record.is_error


def test_each_line_is_one_json_object_with_the_documented_keys(
    trace_path: Path, provider: TracerProvider
) -> None:
    _one_span(provider, "Idle")
    _one_span(provider, "Done")
    lines = trace_path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    assert set(json.loads(lines[0])) == {
        "name",
        "trace_id",
        "span_id",
        "parent_span_id",
        "kind",
        "start_ns",
        "end_ns",
        "status",
        "status_description",
        "attributes",
        "events",
        "resource",
    }


def test_non_finite_floats_are_written_as_text(trace_path: Path, provider: TracerProvider) -> None:
    span = provider.get_tracer("test").start_span("x", start_time=T0)
    span.set_attributes({"nan": float("nan"), "inf": float("inf"), "list": [1.5, float("-inf")]})
    span.end(end_time=T0)
    [record] = read_trace_file(trace_path)
    assert record.attributes == {"nan": "nan", "inf": "inf", "list": [1.5, "-inf"]}


def test_the_file_is_private(trace_path: Path, provider: TracerProvider) -> None:
    _one_span(provider, "Idle")
    assert stat.S_IMODE(os.stat(trace_path).st_mode) == 0o600


def test_runs_append_to_one_file(trace_path: Path) -> None:
    for name in ("first run", "second run"):
        provider = _provider(trace_path)
        _one_span(provider, name)
        provider.shutdown()
    assert [record.name for record in read_trace_file(trace_path)] == ["first run", "second run"]


def test_exports_from_many_threads_never_interleave(
    trace_path: Path, provider: TracerProvider
) -> None:
    def work(thread: int) -> None:
        for index in range(200):
            _one_span(provider, f"t{thread}-{index}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    names = {record.name for record in read_trace_file(trace_path)}
    assert names == {f"t{t}-{i}" for t in range(8) for i in range(200)}


def test_after_shutdown_exports_fail_and_flush_is_a_no_op(trace_path: Path) -> None:
    exporter = JsonLinesSpanExporter(trace_path)
    assert exporter.force_flush() is True
    exporter.shutdown()
    exporter.shutdown()  # twice is harmless
    assert exporter.export([]) is SpanExportResult.FAILURE


def _two_spans(trace_path: Path) -> list[str]:
    provider = _provider(trace_path)
    _one_span(provider, "Idle")
    _one_span(provider, "Done")
    provider.shutdown()
    return trace_path.read_text(encoding="utf-8").splitlines(keepends=True)


@pytest.mark.parametrize(
    "bad",
    ["{not json\n", '{"name": "Idle"}\n', "[1, 2]\n", '{"status": "MAYBE"}\n'],
    ids=["not-json", "missing-keys", "not-an-object", "bad-status"],
)
def test_a_bad_line_is_an_error_naming_its_number(trace_path: Path, bad: str) -> None:
    first, second = _two_spans(trace_path)
    trace_path.write_text(first + bad + second, encoding="utf-8")
    with pytest.raises(ValueError, match=r"trace\.jsonl:2: not a span record"):
        read_trace_file(trace_path)


def test_a_bad_last_line_that_ends_with_a_newline_is_an_error(trace_path: Path) -> None:
    first, _ = _two_spans(trace_path)
    trace_path.write_text(first + '{"name": "Idle"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=":2: "):
        read_trace_file(trace_path)


def test_an_incomplete_last_line_is_skipped_with_a_warning(
    trace_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = _two_spans(trace_path)
    trace_path.write_text(first + second + second[:40], encoding="utf-8")  # writer killed
    with caplog.at_level(logging.WARNING, logger="observability._trace_file"):
        records = read_trace_file(trace_path)
    assert [record.name for record in records] == ["Idle", "Done"]
    assert "trace.jsonl:3: skipped an incomplete last line" in caplog.text


def test_a_complete_last_line_without_newline_is_read(trace_path: Path) -> None:
    first, second = _two_spans(trace_path)
    trace_path.write_text(first + second.rstrip("\n"), encoding="utf-8")
    assert [record.name for record in read_trace_file(trace_path)] == ["Idle", "Done"]


def test_blank_lines_and_an_empty_file_are_fine(trace_path: Path) -> None:
    trace_path.parent.mkdir(parents=True)
    trace_path.write_text("", encoding="utf-8")
    assert read_trace_file(trace_path) == []
    first, second = _two_spans(trace_path)
    trace_path.write_text(first + "\n  \n" + second, encoding="utf-8")
    assert len(read_trace_file(trace_path)) == 2

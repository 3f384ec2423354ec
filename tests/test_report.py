"""The lifecycle report: a run recorded through the real SDK becomes one self-contained page."""

from __future__ import annotations

import math
import random
import re
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from observability._report import ReportSummary, build_report, write_report
from observability._trace_file import JsonLinesSpanExporter, SpanRecord, read_trace_file

T0 = 1_750_000_000_000_000_000  # ns since the epoch
PRICE_PER_S = 0.69 / 3600
SCRIPT = "<script>alert(1)</script>"
LIGHTHOUSE = "a lighthouse on a cliff at dawn, oil painting, golden light"
PAPER_BOAT = "a paper boat\non a rainy street"

Phases = Sequence[tuple[str, str, float, float]]  # span name, phase, start s, end s


@dataclass(frozen=True)
class _Generation:
    """A generation of the recorded run; ``error`` = (error.type, error.phase) when it failed."""

    gen_id: str
    user: str | None
    model: str
    start: float
    end: float
    phases: Phases
    worker: str | None = None
    startup_s: float | None = None
    error: tuple[str, str] | None = None
    prompt: str | None = None

    def attributes(self) -> dict[str, AttributeValue]:
        attributes: dict[str, AttributeValue] = {
            "swarmpod.generation.id": self.gen_id,
            "swarmpod.model": self.model,
            "swarmpod.endpoint.id": "ep-1",
            "swarmpod.cold_start": any(phase == "Waking" for _, phase, _, _ in self.phases),
            "swarmpod.images": 1,
            "swarmpod.outcome": "succeeded" if self.error is None else "failed",
        }
        optional = {
            "swarmpod.user": self.user,
            "swarmpod.worker.id": self.worker,
            "swarmpod.startup_s": self.startup_s,
            "swarmpod.prompt": self.prompt,
            "error.type": self.error[0] if self.error else None,
            "error.phase": self.error[1] if self.error else None,
        }
        attributes.update({key: value for key, value in optional.items() if value is not None})
        return attributes


class _Recording:
    """Writes spans of a run through the real SDK into a trace file, times in seconds."""

    def __init__(self, path: Path) -> None:
        self.provider = TracerProvider(resource=Resource({"service.name": "swarmpod"}))
        self.provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(path)))
        self.tracer = self.provider.get_tracer("swarmpod")

    def start(
        self,
        name: str,
        at: float,
        attributes: Mapping[str, AttributeValue],
        parent: Span | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
    ) -> Span:
        context = trace.set_span_in_context(parent) if parent is not None else None
        return self.tracer.start_span(
            name, context=context, kind=kind, start_time=_ns(at), attributes=attributes
        )

    def phases(self, parent: Span, phases: Phases) -> None:
        for name, phase, start, end in phases:
            span = self.start(name, start, {"swarmpod.phase": phase}, parent)
            if phase == "Polling":
                span.add_event("poll", {"status": "IN_QUEUE"}, timestamp=_ns(start))
            span.end(end_time=_ns(end))

    def warm(self, parent: Span, start: float, end: float, phases: Phases) -> None:
        warm = self.start("Warm", start, {"swarmpod.phase": "Warm"}, parent)
        self.phases(warm, phases)
        warm.end(end_time=_ns(end))

    def worker(self, name: str, start: float, lease_id: str, protocol: str) -> Span:
        endpoint = name.partition(":")[2]
        attributes = {"swarmpod.lease.id": lease_id, "swarmpod.endpoint.id": endpoint}
        return self.start(name, start, {**attributes, "swarmpod.protocol": protocol})

    def release(self, worker: Span, worker_id: str, billed_s: float, end: float) -> None:
        worker.set_attributes(
            {
                "swarmpod.worker.id": worker_id,
                "swarmpod.gpu_seconds.billed": billed_s,
                "swarmpod.cost_usd": billed_s * PRICE_PER_S,
            }
        )
        worker.end(end_time=_ns(end))

    def generation(self, generation: _Generation, parent: Span | None = None) -> Span:
        root = self.start(
            f"Generation:{generation.model}", generation.start, generation.attributes(), parent
        )
        self.phases(root, generation.phases)
        if generation.error is not None:
            root.set_status(Status(StatusCode.ERROR, "the worker was lost"))
        root.end(end_time=_ns(generation.end))
        return root

    def cost(
        self,
        parent: Span,
        name: str,
        at: float,
        seconds: tuple[float, float, float],
        attributes: Mapping[str, AttributeValue],
    ) -> None:
        boot, execution, idle_tail = seconds
        gpu_seconds = {
            "swarmpod.gpu_seconds.boot": boot,
            "swarmpod.gpu_seconds.execution": execution,
            "swarmpod.gpu_seconds.idle_tail": idle_tail,
            "swarmpod.cost_usd": sum(seconds) * PRICE_PER_S,
        }
        self.start(name, at, {**attributes, **gpu_seconds}, parent).end(end_time=_ns(at))


def _ns(seconds: float) -> int:
    return T0 + round(seconds * 1e9)


def _served(start: float, ready: float, done: float, model: str, *, cold: bool) -> Phases:
    """The states of a generation that a worker served (``cold``: it woke one first)."""
    waking = [
        ("Waking:runpod", "Waking", start, start + 1),
        ("Polling:runpod", "Polling", start + 1, ready),
    ]
    return [
        ("Idle", "Idle", start, start),
        *(waking if cold else []),
        ("Ready:w-a1", "Ready", ready, ready + 1),
        (f"Generating:{model}", "Generating", ready + 1, done),
        ("Done", "Done", done, done),
    ]


def record_run(path: Path, *, third_model: str = "flux-dev") -> None:
    """A recorded run: two workers, four generations, costs that add up to the bills.

    Worker A (a v2 lease) boots for a cold generation of alice's, then serves two warm ones
    (bob's, then alice's with ``third_model``); its 95 billed seconds are shared among them.
    Worker B (a v1 worker) was asked for by an anonymous generation that failed while
    polling; it served nobody, so its 40 billed seconds are unattributed.
    """
    rec = _Recording(path)

    lease = rec.worker("Lease:ep-1", 0, "lease-a", "v2")
    rec.phases(lease, [("Requested", "Requested", 0, 1), ("Queued", "Queued", 1, 5)])
    rec.phases(lease, [("Booting", "Booting", 5, 40)])
    busy = [("Idle", "Idle", 40, 41), ("Busy", "Busy", 41, 56), ("Idle", "Idle", 56, 60)]
    busy += [("Busy", "Busy", 60, 71), ("Idle", "Idle", 71, 72), ("Busy", "Busy", 72, 81)]
    rec.warm(lease, 40, 95, [*busy, ("Idle", "Idle", 81, 95)])
    rec.phases(lease, [("Draining", "Draining", 95, 99), ("Released", "Released", 99, 100)])
    served = [
        _Generation(
            "a1a1a1a1b2b2b2b2", "alice", "sdxl-base", 0, 56,
            _served(0, 40, 55, "sdxl-base", cold=True), "w-a1", startup_s=40.0,
            prompt=LIGHTHOUSE,
        ),
        _Generation(
            "c3c3c3c3d4d4d4d4", "bob", "sdxl-base", 59, 71,
            _served(59, 59, 70, "sdxl-base", cold=False), "w-a1", prompt="a red fox",
        ),
        _Generation(
            "e5e5e5e5f6f6f6f6", "alice", third_model, 71.5, 81,
            _served(71.5, 71.5, 80, third_model, cold=False), "w-a1",
        ),
    ]  # fmt: skip
    roots = [rec.generation(served[0])]
    http = rec.start("POST /API/GenerateText2ImageWS", 58.5, {}, kind=SpanKind.SERVER)
    roots.append(rec.generation(served[1], parent=http))
    http.end(end_time=_ns(71.5))
    roots.append(rec.generation(served[2]))
    rec.release(lease, "w-a1", billed_s=95.0, end=100)
    shares = [(35.0, 15.0, 10.0), (0.0, 11.0, 9.0), (0.0, 6.0, 9.0)]
    for generation, root, seconds in zip(served, roots, shares, strict=True):
        attributes = {
            "swarmpod.generation.id": generation.gen_id,
            "swarmpod.user": generation.user or "",
            "swarmpod.model": generation.model,
            "swarmpod.worker.id": "w-a1",
        }
        rec.cost(root, "Cost:generation", 100, seconds, attributes)

    worker = rec.worker("Worker:ep-2", 10, "job-b", "v1")
    rec.phases(worker, [("Requested", "Requested", 10, 10.5), ("Queued", "Queued", 10.5, 14)])
    rec.phases(worker, [("Booting", "Booting", 14, 36)])
    rec.warm(worker, 36, 45, [("Idle", "Idle", 36, 45)])
    rec.phases(worker, [("Draining", "Draining", 45, 50), ("Released", "Released", 50, 50)])
    failing = [
        ("Idle", "Idle", 10, 10),
        ("Waking:runpod", "Waking", 10, 11),
        ("Polling:runpod", "Polling", 11, 35),
        ("Failed", "Failed", 35, 35),
    ]
    error = ("WorkerLostError", "polling")
    rec.generation(
        _Generation(
            "0909090912121212", None, "flux-dev", 10, 35, failing, error=error, prompt=PAPER_BOAT
        )
    )
    reason = {"swarmpod.worker.id": "w-b1", "swarmpod.cost.reason": "no generation"}
    rec.cost(worker, "Cost:unattributed", 50, (22.0, 0.0, 18.0), reason)
    rec.release(worker, "w-b1", billed_s=40.0, end=50)
    rec.provider.shutdown()


@dataclass
class _Element:
    tag: str
    attributes: dict[str, str]


class _Page(HTMLParser):
    """The parsed page: every element, the text and the table rows of each section.

    Parsing checks that the page is well formed: every element is closed, in order.
    """

    VOID = frozenset({"meta", "br", "hr", "img", "input", "link", "col", "wbr"})

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[_Element] = []
        self.text: defaultdict[str, list[str]] = defaultdict(list)
        self.rows: defaultdict[str, list[list[str]]] = defaultdict(list)
        self._open: list[str] = []
        self._section = ""
        self._row: list[str] = []
        self._cell: list[str] | None = None
        self.titles: list[list[str]] = []
        self.feed(markup)
        self.close()
        assert self._open == [], f"unclosed elements: {self._open}"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        self.elements.append(_Element(tag, attributes))
        if tag not in self.VOID:
            self._open.append(tag)
        if tag == "section":
            self._section = attributes["id"]
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "title":
            self.titles.append([])

    def handle_endtag(self, tag: str) -> None:
        assert self._open and self._open[-1] == tag, f"</{tag}> closes {self._open[-1:]}"
        self._open.pop()
        if tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr":
            self.rows[self._section].append(self._row)

    def handle_data(self, data: str) -> None:
        if self._open and self._open[-1] == "title":
            self.titles[-1].append(data)
        if "title" in self._open or "style" in self._open:
            return
        self.text[self._section].append(data)
        if self._cell is not None:
            self._cell.append(data)

    def section_text(self, section: str) -> str:
        return " ".join("".join(self.text[section]).split())

    def tooltips(self) -> list[str]:
        return ["".join(parts) for parts in self.titles]

    def bars(self) -> list[_Element]:
        return [e for e in self.elements if e.tag == "rect" and e.attributes.get("class") == "bar"]


@pytest.fixture
def trace_file(tmp_path: Path) -> Path:
    path = tmp_path / "trace.jsonl"
    record_run(path)
    return path


@pytest.fixture
def spans(trace_file: Path) -> list[SpanRecord]:
    return read_trace_file(trace_file)


@pytest.fixture
def page(spans: list[SpanRecord]) -> _Page:
    return _Page(build_report(spans))


def _phase_spans(spans: Sequence[SpanRecord]) -> list[SpanRecord]:
    return [span for span in spans if "swarmpod.phase" in span.attributes]


def _sum(spans: Sequence[SpanRecord], *names: str) -> float:
    return math.fsum(span.attr_float(name) or 0.0 for span in spans for name in names)


def test_the_page_is_well_formed_html_with_xml_valid_svg(spans: list[SpanRecord]) -> None:
    markup = build_report(spans)
    assert markup.startswith('<!DOCTYPE html>\n<html lang="en">')
    _Page(markup)  # every element closed in order
    charts = re.findall(r"<svg\b.*?</svg>", markup, flags=re.DOTALL)
    assert len(charts) > 5
    for chart in charts:
        ET.fromstring(chart)


def test_the_page_needs_nothing_from_outside(spans: list[SpanRecord]) -> None:
    markup = build_report(spans).lower()
    assert "http://" not in markup
    assert "https://" not in markup
    assert "<script" not in markup
    assert "<link" not in markup
    assert "url(" not in markup
    assert "@import" not in markup


def test_one_bar_per_state_visited_coloured_by_phase(spans: list[SpanRecord], page: _Page) -> None:
    phases = _phase_spans(spans)
    bars = page.bars()
    assert len(bars) == len(phases) == 38
    assert Counter(bar.attributes["data-phase"] for bar in bars) == Counter(
        span.attributes["swarmpod.phase"] for span in phases
    )
    assert {bar.attributes["data-span-id"] for bar in bars} == {span.span_id for span in phases}
    assert all(float(bar.attributes["width"]) >= 2 for bar in bars)  # zero-length ones show
    colours = {bar.attributes["data-phase"]: bar.attributes["fill"] for bar in bars}
    assert len(set(colours.values())) == len(colours)
    legend = page.section_text("timeline")
    assert all(phase in legend for phase in colours)


def test_nested_warm_bars_are_thinner_than_idle_and_busy(page: _Page) -> None:
    heights = {bar.attributes["data-phase"]: float(bar.attributes["height"]) for bar in page.bars()}
    assert heights["Warm"] < heights["Busy"] == heights["Idle"] == heights["Generating"]


def test_a_row_per_worker_and_per_generation_on_one_time_axis(page: _Page) -> None:
    timeline = page.section_text("timeline")
    for label in ("w-a1 (v2)", "w-b1 (v1)", "a lighthouse on a… · sdxl-base · alice"):
        assert label in timeline
    assert "a paper boat on a rainy st… · flux-dev" in timeline
    assert "Workers (2)" in timeline
    assert "Generations (4)" in timeline
    assert "0 s" in timeline
    assert "100 s" in timeline


def test_generations_are_labelled_by_prompt_and_model_with_the_whole_prompt_on_hover(
    page: _Page,
) -> None:
    texts = page.section_text("timeline")
    assert "a red fox · sdxl-base · bob" in texts  # short enough: whole
    assert "e5e5e5e5 · flux-dev · alice" in texts  # no prompt on its span: its short id
    assert "(anonymous)" not in texts and "default model" not in texts
    tooltips = page.tooltips()
    assert any(LIGHTHOUSE in tooltip and "alice" in tooltip for tooltip in tooltips)
    [slowest] = _tables(page.rows["slowest"])
    prompts = [dict(zip(slowest[0], row, strict=True))["prompt"] for row in slowest[1:]]
    assert prompts == [
        "a lighthouse on a cliff at dawn, oil pa…",  # 40 characters
        "a paper boat on a rainy street",  # one line
        "a red fox",
        "—",
    ]


def test_the_summary_adds_up_the_inputs(trace_file: Path, tmp_path: Path) -> None:
    spans = read_trace_file(trace_file)
    costs = [span for span in spans if span.name.startswith("Cost:")]
    workers = [span for span in spans if span.name.startswith(("Lease:", "Worker:"))]
    parts = ("boot", "execution", "idle_tail")
    attributed = _sum(costs, *(f"swarmpod.gpu_seconds.{part}" for part in parts))

    summary = write_report(trace_file, tmp_path / "out" / "report.html")

    assert (summary.generations, summary.failed, summary.cancelled) == (4, 1, 0)
    assert (summary.workers, summary.cold_starts) == (2, 2)
    assert summary.phase_bars == len(_phase_spans(spans))
    assert summary.gpu_seconds_attributed == pytest.approx(attributed)
    assert summary.gpu_seconds_billed == pytest.approx(_sum(workers, "swarmpod.gpu_seconds.billed"))
    assert summary.cost_usd == pytest.approx(_sum(costs, "swarmpod.cost_usd"))
    assert summary.gpu_seconds_attributed == pytest.approx(summary.gpu_seconds_billed) == 135.0
    text = _Page((tmp_path / "out" / "report.html").read_text(encoding="utf-8"))
    shown = text.section_text("summary")
    assert "1 failed" in shown
    assert "135.00" in shown
    assert "equal to the attributed GPU-seconds" in shown


def test_user_input_is_escaped(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    record_run(path, third_model=SCRIPT)
    markup = build_report(read_trace_file(path), title="run <1> & co")
    assert SCRIPT not in markup
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markup
    assert "<title>run &lt;1&gt; &amp; co</title>" in markup
    page = _Page(markup)
    assert SCRIPT in page.section_text("cost")  # shown as text, not run
    assert not [e for e in page.elements if e.tag == "script"]


def test_cost_split_per_user_and_per_model_with_total_and_unattributed(page: _Page) -> None:
    by_user, by_model = _tables(page.rows["cost"])
    users = {row[0]: row for row in by_user[1:]}
    assert list(users) == ["alice", "bob", "(unattributed)", "Total"]
    assert users["alice"][1:6] == ["2", "35.00", "21.00", "19.00", "75.00"]
    assert users["(unattributed)"][1:6] == ["1", "22.00", "0.00", "18.00", "40.00"]
    assert users["Total"][5] == "135.00"
    assert users["Total"][6] == f"${135 * PRICE_PER_S:,.4f}"
    models = [row[0] for row in by_model[1:]]
    assert models == ["sdxl-base", "flux-dev", "(unattributed)", "Total"]


def _tables(rows: list[list[str]]) -> list[list[list[str]]]:
    """Split a section's rows into its tables at each header row."""
    tables: list[list[list[str]]] = []
    for row in rows:
        if row[0] in ("user", "model", "#", "generation"):
            tables.append([])
        tables[-1].append(row)
    return tables


def test_the_slowest_generations_come_longest_first_with_their_phases(page: _Page) -> None:
    [table] = _tables(page.rows["slowest"])
    header, *rows = table
    durations = [float(row[header.index("duration")].removesuffix(" s")) for row in rows]
    assert durations == sorted(durations, reverse=True) == [56.0, 25.0, 12.0, 9.5]
    first = dict(zip(header, rows[0], strict=True))
    assert first["generation"] == "a1a1a1a1"
    assert first["start"] == "cold (40.00 s startup)"
    assert first["worker"] == "w-a1"
    assert "Polling 39.00 s" in first["phases"]
    assert "Generating 14.00 s" in first["phases"]
    assert dict(zip(header, rows[2], strict=True))["start"] == "warm"


def test_failures_name_the_error_and_the_phase(page: _Page) -> None:
    [[header, *rows]] = _tables(page.rows["failures"])
    assert len(rows) == 1
    failure = dict(zip(header, rows[0], strict=True))
    assert failure["error type"] == "WorkerLostError"
    assert failure["failed while"] == "polling"
    assert failure["user"] == "(anonymous)"
    assert failure["message"] == "the worker was lost"


def test_cold_starts_are_a_histogram(page: _Page) -> None:
    histogram = [e for e in page.elements if e.attributes.get("class") == "hist"]
    assert sum(float(e.attributes["height"]) > 0 for e in histogram) == 1  # one measured cold start
    text = page.section_text("cold-starts")
    assert "startup time (s)" in text
    assert "1 cold start (from asking for a worker to the worker ready): min 40.00 s" in text
    assert "1 cold generation(s) never got a worker ready" in text


def test_a_run_without_cold_starts_says_so(spans: list[SpanRecord]) -> None:
    warm_only = [s for s in spans if s.attributes.get("swarmpod.cold_start") is not True]
    assert "No cold starts." in _Page(build_report(warm_only)).section_text("cold-starts")


def test_the_same_spans_in_any_order_give_the_same_page(spans: list[SpanRecord]) -> None:
    shuffled = spans.copy()
    random.Random(7).shuffle(shuffled)
    assert build_report(shuffled) == build_report(spans)


def test_an_empty_trace_file_gives_a_page_with_nothing_to_show(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    summary = write_report(empty, tmp_path / "deep" / "er" / "report.html")
    page = _Page((tmp_path / "deep" / "er" / "report.html").read_text(encoding="utf-8"))
    assert summary == ReportSummary()
    assert "Nothing to show" in page.section_text("")
    assert not page.bars()


def test_unknown_spans_and_orphaned_states_are_tolerated(spans: list[SpanRecord]) -> None:
    lost_root = next(s for s in spans if s.name == "Lease:ep-1")
    without_root = [s for s in spans if s is not lost_root]
    page = _Page(build_report(without_root))
    orphans = [s for s in _phase_spans(spans) if s.trace_id == lost_root.trace_id]
    assert len(page.bars()) == len(_phase_spans(spans)) - len(orphans)
    notes = page.section_text("summary")
    assert f"{len(orphans)} state spans belong to a generation or worker" in notes
    assert "1 other spans (HTTP requests and the like) are not shown." in notes


def test_the_timeline_says_a_lease_boots_inside_its_queued_bar(page: _Page) -> None:
    timeline = page.section_text("timeline")
    assert "Queued bar holds its worker" in timeline
    assert "RunPod reports a lease job as queued until the booted worker takes it" in timeline

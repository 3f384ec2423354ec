"""The lifecycle report: one self-contained HTML page from the spans of a trace file.

``swarmpod report`` reads a JSON-lines trace file (:func:`read_trace_file`) and writes a page
with, in order: a summary (generations by outcome, workers, cold starts, GPU-seconds and cost),
a timeline with one row per worker and one per generation and one bar per state visited, a
histogram of cold-start times, the cost split by user and by model, the slowest generations
with their phase breakdown, and the failures.

The spans it reads (see the producers in :mod:`observability`):

- ``Generation:<model>``: a generation's root; its children with ``swarmpod.phase`` are the
  states it visited.
- ``Lease:<endpoint>`` / ``Worker:<endpoint>``: a worker's root, with ``swarmpod.gpu_seconds.
  billed``; its children with ``swarmpod.phase`` are its states (``Idle``/``Busy`` nested in
  ``Warm``).
- ``Cost:generation`` / ``Cost:unattributed``: a settled cost, GPU-seconds by phase and USD.

Any other span is ignored. The page has inline CSS and inline SVG only: no script, no font
and no URL, so it opens offline and prints. Every text that comes from a span is escaped, and
the same spans always give the same page.
"""

from __future__ import annotations

import math
import statistics
import zlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from ._svg_plot import esc, group, line, nice_step, rect, svg, text, ticks
from ._trace_file import SpanRecord, read_trace_file

__all__ = ["ReportSummary", "build_report", "write_report"]

GENERATION_PREFIX: Final = "Generation:"
WORKER_PREFIXES: Final = ("Lease:", "Worker:")
COST_PREFIX: Final = "Cost:"
UNATTRIBUTED: Final = "(unattributed)"
ANONYMOUS: Final = "(anonymous)"

_NS_PER_S: Final = 1e9
_MAX_NESTING: Final = 16
_SLOWEST: Final = 10
_LABEL_CHARS: Final = 38  # what fits the timeline's label column
_EQUAL_WITHIN_S: Final = 0.005
_MODEL_EXTENSIONS: Final = (".safetensors", ".ckpt", ".gguf", ".sft", ".pt", ".bin")

_PHASE_COLOURS: Final = {
    "Idle": "#b8c2cc",
    "Waking": "#f0a04b",
    "Polling": "#f5cd5b",
    "Ready": "#8fd3e8",
    "Generating": "#2b7bd6",
    "ShuttingDown": "#9b8ad0",
    "Done": "#2f9e44",
    "Failed": "#d63939",
    "Cancelled": "#6c757d",
    "Requested": "#d7c9f0",
    "Queued": "#f7c998",
    "Booting": "#e07b39",
    "Warm": "#7fcf9f",
    "Busy": "#138a72",
    "Draining": "#c4a5de",
    "Released": "#495057",
    "Lost": "#8c1c13",
}
_OTHER_COLOURS: Final = ("#a3a948", "#ce6a85", "#5c8a99", "#bf8b5e", "#7d5ba6", "#4f9d69")
_COST_PARTS: Final = (
    ("boot", "swarmpod.gpu_seconds.boot", "#e07b39"),
    ("execution", "swarmpod.gpu_seconds.execution", "#2b7bd6"),
    ("idle tail", "swarmpod.gpu_seconds.idle_tail", "#b8c2cc"),
)


@dataclass(frozen=True)
class ReportSummary:
    """The headline figures of a report.

    Attributes:
        generations: generation roots in the file.
        failed: those whose outcome is ``failed``.
        cancelled: those whose outcome is ``cancelled``.
        workers: worker (lease) roots.
        cold_starts: generations that waited for a worker to boot.
        gpu_seconds_attributed: GPU-seconds of every ``Cost:*`` span (boot + execution + idle
            tail).
        gpu_seconds_billed: the billed seconds estimated on the worker roots; equal to the
            attributed seconds once every worker's bill is settled.
        cost_usd: USD of every ``Cost:*`` span.
        phase_bars: phase bars drawn on the timeline (one per state visited).
    """

    generations: int = 0
    failed: int = 0
    cancelled: int = 0
    workers: int = 0
    cold_starts: int = 0
    gpu_seconds_attributed: float = 0.0
    gpu_seconds_billed: float = 0.0
    cost_usd: float = 0.0
    phase_bars: int = 0


def build_report(spans: Sequence[SpanRecord], *, title: str = "swarmpod lifecycle report") -> str:
    """The report page (HTML5, self-contained) for ``spans``."""
    return _render(_Run.of(spans), title)


def write_report(trace_file: Path, output: Path) -> ReportSummary:
    """Read ``trace_file``, write its report to ``output`` (UTF-8, parents made), sum it up.

    Raises:
        ValueError: the trace file holds a line that is not a span record.
        OSError: a file cannot be read or written.
    """
    run = _Run.of(read_trace_file(trace_file))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(_render(run, "swarmpod lifecycle report"), encoding="utf-8")
    return run.summary()


# --- the model: rows of the timeline, read from the spans ---------------------------------


@dataclass(frozen=True)
class _Visit:
    """One state visited: a phase span, and whether states nest in it (Warm)."""

    span: SpanRecord
    phase: str
    has_children: bool


@dataclass(frozen=True)
class _Row:
    """A generation or a worker: its root span and the states it visited, in order."""

    root: SpanRecord
    visits: tuple[_Visit, ...]

    def phase_seconds(self) -> dict[str, float]:
        """Seconds per phase (innermost states only), in the order first visited."""
        seconds: dict[str, float] = {}
        for visit in self.visits:
            if not visit.has_children:
                seconds[visit.phase] = seconds.get(visit.phase, 0.0) + visit.span.duration_s
        return seconds


_Children = Mapping[tuple[str, str], Sequence[SpanRecord]]


def _order(span: SpanRecord) -> tuple[int, int, str, str, str]:
    return (span.start_ns, span.end_ns, span.trace_id, span.span_id, span.name)


def _visits(parent: SpanRecord, children: _Children, depth: int = 0) -> list[_Visit]:
    if depth >= _MAX_NESTING:
        return []
    visits: list[_Visit] = []
    for child in children.get((parent.trace_id, parent.span_id), ()):
        phase = child.attr_str("swarmpod.phase")
        if phase is None:
            continue
        nested = _visits(child, children, depth + 1)
        visits.append(_Visit(child, phase, bool(nested)))
        visits.extend(nested)
    return visits


@dataclass(frozen=True)
class _Run:
    """The spans of a file, sorted, with the rows and costs the report shows."""

    spans: tuple[SpanRecord, ...]
    generations: tuple[_Row, ...]
    workers: tuple[_Row, ...]
    costs: tuple[SpanRecord, ...]

    @classmethod
    def of(cls, spans: Iterable[SpanRecord]) -> _Run:
        ordered = tuple(sorted(spans, key=_order))
        children: defaultdict[tuple[str, str], list[SpanRecord]] = defaultdict(list)
        for span in ordered:
            if span.parent_span_id is not None and span.parent_span_id != span.span_id:
                children[(span.trace_id, span.parent_span_id)].append(span)

        def rows(*prefixes: str) -> tuple[_Row, ...]:
            roots = (span for span in ordered if span.name.startswith(prefixes))
            return tuple(_Row(root, tuple(_visits(root, children))) for root in roots)

        costs = tuple(span for span in ordered if span.name.startswith(COST_PREFIX))
        return cls(ordered, rows(GENERATION_PREFIX), rows(*WORKER_PREFIXES), costs)

    @property
    def rows(self) -> tuple[_Row, ...]:
        """Workers first, then generations."""
        return self.workers + self.generations

    @property
    def empty(self) -> bool:
        """Nothing the report can show."""
        return not (self.generations or self.workers or self.costs)

    @property
    def origin_ns(self) -> int:
        """The first start among the rows (time 0 of the timeline)."""
        starts = [row.root.start_ns for row in self.rows]
        starts += [visit.span.start_ns for row in self.rows for visit in row.visits]
        return min(starts, default=0)

    @property
    def phase_bars(self) -> int:
        """Bars the timeline draws: one per state visited."""
        return sum(len(row.visits) for row in self.rows)

    def stray_phases(self) -> int:
        """Phase spans whose generation or worker root is not in the file."""
        drawn = {(v.span.trace_id, v.span.span_id) for row in self.rows for v in row.visits}
        phases = {(s.trace_id, s.span_id) for s in self.spans if "swarmpod.phase" in s.attributes}
        return len(phases - drawn)

    def summary(self) -> ReportSummary:
        """The headline figures."""
        outcomes = [_outcome(row.root) for row in self.generations]
        return ReportSummary(
            generations=len(self.generations),
            failed=outcomes.count("failed"),
            cancelled=outcomes.count("cancelled"),
            workers=len(self.workers),
            cold_starts=sum(_cold(row.root) for row in self.generations),
            gpu_seconds_attributed=math.fsum(_cost_seconds(span) for span in self.costs),
            gpu_seconds_billed=math.fsum(
                _number(row.root, "swarmpod.gpu_seconds.billed") for row in self.workers
            ),
            cost_usd=math.fsum(_number(span, "swarmpod.cost_usd") for span in self.costs),
            phase_bars=self.phase_bars,
        )


def _number(span: SpanRecord, name: str) -> float:
    return span.attr_float(name) or 0.0


def _cost_seconds(span: SpanRecord) -> float:
    return math.fsum(_number(span, attribute) for _, attribute, _ in _COST_PARTS)


def _cold(root: SpanRecord) -> bool:
    return root.attr_bool("swarmpod.cold_start")


def _user(span: SpanRecord) -> str:
    return span.attr_str("swarmpod.user") or ANONYMOUS


def _model(span: SpanRecord) -> str:
    return span.attr_str("swarmpod.model") or "(default model)"


def _generation_id(root: SpanRecord) -> str:
    return root.attr_str("swarmpod.generation.id") or root.span_id


def _outcome(root: SpanRecord) -> str:
    return root.attr_str("swarmpod.outcome") or ("failed" if root.is_error else "unknown")


def _worker_of(span: SpanRecord) -> str:
    return span.attr_str("swarmpod.worker.id") or "—"


def _worker_label(root: SpanRecord) -> str:
    protocol = root.attr_str("swarmpod.protocol")
    suffix = f" ({protocol})" if protocol else ""
    worker = root.attr_str("swarmpod.worker.id")
    if worker:
        return f"{worker}{suffix}"
    lease = root.attr_str("swarmpod.lease.id") or root.span_id
    return f"lease {lease}{suffix}, no worker"


def _short_model(model: str) -> str:
    """``OfficialStableDiffusion/sd_xl_base_1.0.safetensors`` → ``sd_xl_base_1.0``."""
    name = model.rstrip("/").rpartition("/")[2] or model
    for extension in _MODEL_EXTENSIONS:
        name = name.removesuffix(extension)
    return name or model


def _generation_label(root: SpanRecord) -> str:
    return f"{_generation_id(root)[:8]} · {_short_model(_model(root))} · {_user(root)}"


def _row_label(row: _Row) -> str:
    if row.root.name.startswith(GENERATION_PREFIX):
        return _generation_label(row.root)
    return _worker_label(row.root)


def _phase_order(phase: str) -> tuple[int, str]:
    """Known phases in their chart order, then the others by name."""
    known = list(_PHASE_COLOURS)
    return (known.index(phase), "") if phase in _PHASE_COLOURS else (len(known), phase)


def _row_tooltip(row: _Row) -> str:
    """What the timeline's label of a row shortens, in full."""
    root = row.root
    if root.name.startswith(GENERATION_PREFIX):
        what = f"generation {_generation_id(root)} of {_user(root)}, {_model(root)}"
        how = f"{_outcome(root)}, {'cold' if _cold(root) else 'warm'}"
    else:
        lease = root.attr_str("swarmpod.lease.id") or "—"
        what = f"worker {_worker_of(root)}, lease {lease}"
        how = f"{_gpu(_number(root, 'swarmpod.gpu_seconds.billed'))} GPU-s billed"
    return f"{root.name}\n{what}\n{_seconds(root.duration_s)}, {how}"


def _colour(phase: str) -> str:
    known = _PHASE_COLOURS.get(phase)
    if known is not None:
        return known
    return _OTHER_COLOURS[zlib.crc32(phase.encode("utf-8")) % len(_OTHER_COLOURS)]


# --- formats and HTML pieces ---------------------------------------------------------------


def _seconds(value: float) -> str:
    return f"{value:,.2f} s" if abs(value) < 100 else f"{value:,.1f} s"


def _gpu(value: float) -> str:
    return f"{value:,.2f}"


def _usd(value: float) -> str:
    return f"${value:,.4f}"


def _clip(label: str, limit: int = _LABEL_CHARS) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _utc(ns: int) -> str:
    return datetime.fromtimestamp(ns / _NS_PER_S, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _section(anchor: str, heading: str, content: str) -> str:
    return f'<section id="{anchor}">\n<h2>{esc(heading)}</h2>\n{content}\n</section>'


def _empty(message: str) -> str:
    return f'<p class="empty">{esc(message)}</p>'


@dataclass(frozen=True)
class _Column:
    """A table column: its heading, and whether it holds numbers (right-aligned)."""

    heading: str
    numeric: bool = False


def _table(
    columns: Sequence[_Column], rows: Iterable[Sequence[str]], foot: Sequence[str] = ()
) -> str:
    """A table; cells are HTML already (escape what comes from spans before)."""

    def cells(values: Sequence[str], tag: str) -> str:
        return "".join(
            f'<{tag} class="num">{value}</{tag}>' if column.numeric else f"<{tag}>{value}</{tag}>"
            for column, value in zip(columns, values, strict=True)
        )

    head = cells([esc(column.heading) for column in columns], "th")
    body = "\n".join(f"<tr>{cells(row, 'td')}</tr>" for row in rows)
    tail = f"<tfoot><tr>{cells(foot, 'th')}</tr></tfoot>" if foot else ""
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>{tail}\n</table>"


def _legend(entries: Iterable[tuple[str, str]]) -> str:
    keys = "".join(
        f'<span class="key">{_swatch(name, colour)} {esc(name)}</span>' for name, colour in entries
    )
    return f'<div class="legend">{keys}</div>'


def _swatch(name: str, colour: str) -> str:
    return svg(
        12,
        12,
        [rect(0, 0, 12, 12, fill=colour, css_class="swatch")],
        label=name,
        css_class="swatch",
    )


# --- (a) summary -----------------------------------------------------------------------------


def _summary_section(run: _Run, summary: ReportSummary) -> str:
    succeeded = sum(_outcome(row.root) == "succeeded" for row in run.generations)
    difference = summary.gpu_seconds_attributed - summary.gpu_seconds_billed
    agreement = (
        "equal to the attributed GPU-seconds ✓"
        if abs(difference) < _EQUAL_WITHIN_S
        else f"differs from the attributed GPU-seconds by {difference:+,.2f} s"
    )
    worker_usd = math.fsum(_number(row.root, "swarmpod.cost_usd") for row in run.workers)
    cards = [
        (
            "Generations",
            str(summary.generations),
            f"{succeeded} succeeded · {summary.failed} failed · {summary.cancelled} cancelled",
        ),
        ("Workers", str(summary.workers), "leases and v1 workers held"),
        ("Cold starts", str(summary.cold_starts), "generations that waited for a boot"),
        (
            "GPU-seconds attributed",
            _gpu(summary.gpu_seconds_attributed),
            "from the Cost:* spans (boot + execution + idle tail)",
        ),
        (
            "GPU-seconds billed",
            _gpu(summary.gpu_seconds_billed),
            f"estimated for workers; {agreement}",
        ),
        ("Cost", _usd(summary.cost_usd), f"from the Cost:* spans; workers: {_usd(worker_usd)}"),
    ]
    items = "\n".join(
        f'<div class="card"><dt>{esc(name)}</dt><dd class="figure">{esc(figure)}</dd>'
        f'<dd class="detail">{esc(detail)}</dd></div>'
        for name, figure, detail in cards
    )
    return _section("summary", "Summary", f'<dl class="cards">\n{items}\n</dl>{_notes(run)}')


def _notes(run: _Run) -> str:
    notes = []
    stray = run.stray_phases()
    if stray:
        notes.append(
            f"{stray} state spans belong to a generation or worker whose root span is not in "
            "the file (was the run interrupted?); they are not drawn."
        )
    shown = {(s.trace_id, s.span_id) for s in run.costs}
    shown |= {(r.root.trace_id, r.root.span_id) for r in run.rows}
    shown |= {(v.span.trace_id, v.span.span_id) for r in run.rows for v in r.visits}
    other = sum(
        (s.trace_id, s.span_id) not in shown and "swarmpod.phase" not in s.attributes
        for s in run.spans
    )
    if other:
        notes.append(f"{other} other spans (HTTP requests and the like) are not shown.")
    return "".join(f'\n<p class="note">{esc(note)}</p>' for note in notes)


# --- (b) timeline ----------------------------------------------------------------------------

_T_WIDTH: Final = 1160.0
_T_LABELS: Final = 300.0
_T_RIGHT: Final = 16.0
_T_AXIS: Final = 26.0
_T_ROW: Final = 22.0
_T_HEADER: Final = 22.0
_T_MIN_BAR: Final = 2.0
_STRIPE: Final = "#f5f7fa"


@dataclass(frozen=True)
class _Scale:
    """Maps span times (ns) to x on the timeline."""

    origin_ns: int
    span_s: float
    left: float
    width: float

    def x(self, ns: int) -> float:
        return self.left + (ns - self.origin_ns) / _NS_PER_S / self.span_s * self.width

    def x_of_seconds(self, seconds: float) -> float:
        return self.left + seconds / self.span_s * self.width


def _timeline_section(run: _Run) -> str:
    if not run.rows:
        return _section("timeline", "Timeline", _empty("No generations or workers to draw."))
    phases = sorted({visit.phase for row in run.rows for visit in row.visits}, key=_phase_order)
    intro = (
        f'<p class="note">Seconds from {esc(_utc(run.origin_ns))}. One bar per state visited; '
        "a thin bar under a worker's Idle and Busy bars is its Warm state. Hover a bar for its "
        "duration.</p>"
    )
    legend = _legend((phase, _colour(phase)) for phase in phases)
    return _section("timeline", "Timeline", intro + legend + _timeline_svg(run))


def _timeline_svg(run: _Run) -> str:
    origin = run.origin_ns
    end = max(
        [row.root.end_ns for row in run.rows]
        + [visit.span.end_ns for row in run.rows for visit in row.visits]
    )
    span_s = max((end - origin) / _NS_PER_S, 1e-3)
    scale = _Scale(origin, span_s, _T_LABELS, _T_WIDTH - _T_LABELS - _T_RIGHT)
    groups = [("Workers", run.workers), ("Generations", run.generations)]
    height = 2 * _T_AXIS + _T_ROW * len(run.rows) + _T_HEADER * sum(bool(g[1]) for g in groups)
    parts = _time_axis(scale, height)
    y = _T_AXIS
    for heading, rows in groups:
        if not rows:
            continue
        parts.append(text(8, y + 15, f"{heading} ({len(rows)})", css_class="group"))
        y += _T_HEADER
        for index, row in enumerate(rows):
            parts.append(_timeline_row(row, scale, y, striped=index % 2 == 1))
            y += _T_ROW
    return svg(
        _T_WIDTH, height, parts, label="timeline of workers and generations", css_class="timeline"
    )


def _time_axis(scale: _Scale, height: float) -> list[str]:
    parts = []
    for tick in ticks(0.0, scale.span_s, target=10):
        x = scale.x_of_seconds(tick)
        label = f"{tick:g} s"
        parts.append(line(x, _T_AXIS - 4, x, height - _T_AXIS + 4, css_class="grid"))
        parts.append(text(x, _T_AXIS - 8, label, anchor="middle", css_class="tick"))
        parts.append(text(x, height - _T_AXIS + 16, label, anchor="middle", css_class="tick"))
    return parts


def _timeline_row(row: _Row, scale: _Scale, y: float, *, striped: bool) -> str:
    root = row.root
    parts = [rect(0, y, _T_WIDTH, _T_ROW, fill=_STRIPE, css_class="stripe")] if striped else []
    label = _clip(_row_label(row))
    parts.append(text(8, y + 15, label, css_class="label", title=_row_tooltip(row)))
    middle = y + _T_ROW / 2
    parts.append(
        line(scale.x(root.start_ns), middle, scale.x(root.end_ns), middle, css_class="life")
    )
    parts.extend(_bar(visit, scale, y) for visit in row.visits)
    return group(parts, css_class="row")


def _bar(visit: _Visit, scale: _Scale, y: float) -> str:
    span = visit.span
    left = scale.x(span.start_ns)
    width = max(scale.x(span.end_ns) - left, _T_MIN_BAR)
    left = min(left, scale.left + scale.width - width)
    top, height = (y + 17, 4.0) if visit.has_children else (y + 4, 12.0)
    start = (span.start_ns - scale.origin_ns) / _NS_PER_S
    title = f"{span.name}\n{visit.phase}: {_seconds(span.duration_s)} (from {start:,.2f} s)"
    return rect(
        left,
        top,
        width,
        height,
        fill=_colour(visit.phase),
        css_class="bar",
        title=title,
        data={"phase": visit.phase, "span-id": span.span_id},
    )


# --- (c) cold starts -------------------------------------------------------------------------

_H_WIDTH: Final = 640.0
_H_HEIGHT: Final = 260.0
_H_LEFT: Final = 56.0
_H_BOTTOM: Final = 48.0
_H_TOP: Final = 20.0
_H_RIGHT: Final = 16.0
_H_MIN_BINS: Final = 6
_H_MIN_BIN_S: Final = 0.5


@dataclass(frozen=True)
class _Bins:
    """Equal-width histogram bins from ``start``."""

    start: float
    width: float
    counts: tuple[int, ...]

    @classmethod
    def of(cls, values: Sequence[float]) -> _Bins:
        low, high = min(values), max(values)
        target = max(1, min(12, round(math.sqrt(len(values)) * 2)))
        spread = high - low
        # Bins no finer than 0.5 s or 2 % of the largest value: cold starts that differ by
        # milliseconds are the same cold start to a reader.
        finest = max(_H_MIN_BIN_S, abs(high) * 0.02)
        width = nice_step(max(spread / target, finest))
        first = math.floor(low / width)
        size = max(1, math.floor((high - first * width) / width + 1e-9) + 1)
        padding = max(0, _H_MIN_BINS - size)  # a few values still get a readable axis
        first -= min(padding // 2, first) if first > 0 else 0
        start = first * width
        size = max(size + padding, math.floor((high - start) / width + 1e-9) + 1)
        counts = [0] * size
        for value in values:
            counts[min(size - 1, max(0, math.floor((value - start) / width + 1e-9)))] += 1
        return cls(start, width, tuple(counts))

    def edge(self, index: int) -> float:
        return round(self.start + index * self.width, 10)


def _cold_start_section(run: _Run) -> str:
    cold = [row.root for row in run.generations if _cold(row.root)]
    values = sorted(v for root in cold if (v := root.attr_float("swarmpod.startup_s")) is not None)
    unmeasured = len(cold) - len(values)
    missing = (
        f" {unmeasured} cold generation(s) never got a worker ready, so have no startup time."
        if unmeasured
        else ""
    )
    if not values:
        message = "No cold starts." if not cold else f"No measured cold starts.{missing}"
        return _section("cold-starts", "Cold starts", _empty(message))
    content = f'<p class="note">{esc(_startup_stats(values) + missing)}</p>\n'
    return _section("cold-starts", "Cold starts", content + _histogram_svg(_Bins.of(values)))


def _startup_stats(values: Sequence[float]) -> str:
    """Count, min, median, p90 and max of sorted startup times."""
    p90 = (
        statistics.quantiles(values, n=10, method="inclusive")[-1] if len(values) > 1 else values[0]
    )
    plural = "s" if len(values) != 1 else ""
    return (
        f"{len(values)} cold start{plural} (from asking for a worker to the worker ready): "
        f"min {_seconds(values[0])} · median {_seconds(statistics.median(values))} · "
        f"p90 {_seconds(p90)} · max {_seconds(values[-1])}."
    )


def _histogram_svg(bins: _Bins) -> str:
    plot_w = _H_WIDTH - _H_LEFT - _H_RIGHT
    plot_h = _H_HEIGHT - _H_TOP - _H_BOTTOM
    base = _H_TOP + plot_h
    peak = max(bins.counts)
    y_ticks = [t for t in ticks(0, peak, target=5) if t == int(t)] or [0.0, float(peak)]
    top = max(peak, y_ticks[-1])
    bar_w = plot_w / len(bins.counts)
    parts = []
    for tick in y_ticks:
        y = base - tick / top * plot_h
        parts.append(line(_H_LEFT, y, _H_LEFT + plot_w, y, css_class="grid"))
        parts.append(text(_H_LEFT - 6, y + 4, f"{tick:g}", anchor="end", css_class="tick"))
    label_every = math.ceil(len(bins.counts) / 12)
    for index, count in enumerate(bins.counts):
        x = _H_LEFT + index * bar_w
        height = count / top * plot_h
        low, high = bins.edge(index), bins.edge(index + 1)
        title = f"{low:g} to {high:g} s: {count} cold start{'s' if count != 1 else ''}"
        parts.append(
            rect(
                x + 1,
                base - height,
                bar_w - 2,
                height,
                fill="#e07b39",
                css_class="hist",
                title=title,
            )
        )
        if count:
            parts.append(
                text(
                    x + bar_w / 2, base - height - 4, str(count), anchor="middle", css_class="tick"
                )
            )
    for index in range(0, len(bins.counts) + 1, label_every):
        x = _H_LEFT + index * bar_w
        parts.append(text(x, base + 16, f"{bins.edge(index):g}", anchor="middle", css_class="tick"))
    parts.append(line(_H_LEFT, base, _H_LEFT + plot_w, base, css_class="axis"))
    parts.append(
        text(
            _H_LEFT + plot_w / 2,
            _H_HEIGHT - 8,
            "startup time (s)",
            anchor="middle",
            css_class="axis-label",
        )
    )
    parts.append(
        text(
            14,
            _H_TOP + plot_h / 2,
            "generations",
            anchor="middle",
            css_class="axis-label",
            rotate=-90,
        )
    )
    return svg(
        _H_WIDTH, _H_HEIGHT, parts, label="histogram of cold-start times", css_class="histogram"
    )


# --- (d) cost split --------------------------------------------------------------------------


@dataclass(frozen=True)
class _CostLine:
    """GPU-seconds by part and USD of a group of Cost spans (a user, a model)."""

    name: str
    count: int
    parts: tuple[float, ...]
    usd: float

    @classmethod
    def of(cls, name: str, spans: Sequence[SpanRecord]) -> _CostLine:
        parts = tuple(
            math.fsum(_number(span, attribute) for span in spans) for _, attribute, _ in _COST_PARTS
        )
        usd = math.fsum(_number(span, "swarmpod.cost_usd") for span in spans)
        return cls(name, len(spans), parts, usd)

    @property
    def total(self) -> float:
        return math.fsum(self.parts)

    def cells(self) -> list[str]:
        figures = [_gpu(part) for part in self.parts] + [_gpu(self.total), _usd(self.usd)]
        return [esc(self.name), str(self.count), *figures]


def _cost_lines(costs: Sequence[SpanRecord], key: str) -> list[_CostLine]:
    groups: defaultdict[str, list[SpanRecord]] = defaultdict(list)
    for span in costs:
        attributed = span.name == f"{COST_PREFIX}generation"
        name = (_user(span) if key == "user" else _model(span)) if attributed else UNATTRIBUTED
        groups[name].append(span)
    lines = [_CostLine.of(name, spans) for name, spans in groups.items()]
    return sorted(lines, key=lambda c: (c.name == UNATTRIBUTED, -c.total, -c.usd, c.name))


def _cost_section(run: _Run) -> str:
    if not run.costs:
        message = "No Cost spans: a cost settles when its worker stops being billed."
        return _section("cost", "Cost split", _empty(message))
    total = _CostLine.of("Total", run.costs)
    columns = [
        _Column("user"),
        _Column("Cost spans", True),
        *(_Column(f"{name} GPU-s", True) for name, _, _ in _COST_PARTS),
        _Column("total GPU-s", True),
        _Column("USD", True),
    ]
    by_user = _cost_lines(run.costs, "user")
    by_model = _cost_lines(run.costs, "model")
    model_columns = [_Column("model"), *columns[1:]]
    content = "\n".join(
        [
            "<h3>By user</h3>",
            _legend((name, colour) for name, _, colour in _COST_PARTS),
            _cost_bars_svg(by_user),
            _table(columns, [c.cells() for c in by_user], total.cells()),
            "<h3>By model</h3>",
            _table(model_columns, [c.cells() for c in by_model], total.cells()),
        ]
    )
    return _section("cost", "Cost split", content)


def _cost_bars_svg(lines: Sequence[_CostLine]) -> str:
    width, labels, figures, row = 900.0, 200.0, 190.0, 24.0
    plot_w = width - labels - figures
    longest = max((c.total for c in lines), default=0.0) or 1.0
    parts = []
    for index, cost in enumerate(lines):
        y = 6 + index * row
        parts.append(text(8, y + 13, _clip(cost.name, 28), css_class="label", title=cost.name))
        x = labels
        for (part, _, colour), seconds in zip(_COST_PARTS, cost.parts, strict=True):
            segment = seconds / longest * plot_w
            title = f"{cost.name}: {part} {_gpu(seconds)} GPU-s"
            parts.append(rect(x, y, segment, 16, fill=colour, css_class="seg", title=title))
            x += segment
        summary = f"{_gpu(cost.total)} GPU-s · {_usd(cost.usd)}"
        parts.append(text(x + 6, y + 13, summary, css_class="tick"))
    height = 12 + row * len(lines)
    return svg(width, height, parts, label="GPU-seconds per user", css_class="costbars")


# --- (e) slowest generations ------------------------------------------------------------------


def _slowest_section(run: _Run) -> str:
    if not run.generations:
        return _section("slowest", "Slowest generations", _empty("No generations."))
    slowest = sorted(
        run.generations,
        key=lambda row: (-row.root.duration_s, row.root.start_ns, _generation_id(row.root)),
    )[:_SLOWEST]
    longest = slowest[0].root.duration_s or 1.0
    columns = [
        _Column("#", True),
        _Column("generation"),
        _Column("model"),
        _Column("user"),
        _Column("outcome"),
        _Column("start"),
        _Column("worker"),
        _Column("duration", True),
        _Column("phases"),
    ]
    rows = [_slowest_cells(rank, row, longest) for rank, row in enumerate(slowest, start=1)]
    note = f'<p class="note">The {len(slowest)} longest generations, longest first.</p>'
    return _section("slowest", "Slowest generations", note + _table(columns, rows))


def _slowest_cells(rank: int, row: _Row, longest: float) -> list[str]:
    root = row.root
    startup = root.attr_float("swarmpod.startup_s")
    start = "warm"
    if _cold(root):
        start = "cold" + (f" ({_seconds(startup)} startup)" if startup is not None else "")
    seconds = row.phase_seconds()
    breakdown = " · ".join(f"{phase} {_seconds(s)}" for phase, s in seconds.items() if s >= 0.005)
    return [
        str(rank),
        f'<code title="{esc(_generation_id(root))}">{esc(_generation_id(root)[:8])}</code>',
        esc(_model(root)),
        esc(_user(root)),
        f'<span class="outcome {esc(_outcome(root))}">{esc(_outcome(root))}</span>',
        esc(start),
        esc(_worker_of(root)),
        esc(_seconds(root.duration_s)),
        _phase_strip(seconds, longest) + f'<div class="breakdown">{esc(breakdown)}</div>',
    ]


def _phase_strip(seconds: Mapping[str, float], longest: float) -> str:
    width = 240.0
    x = 0.0
    parts = []
    for phase, duration in seconds.items():
        segment = duration / longest * width
        title = f"{phase}: {_seconds(duration)}"
        parts.append(rect(x, 0, segment, 12, fill=_colour(phase), css_class="seg", title=title))
        x += segment
    return svg(width, 12, parts, label="phases", css_class="strip")


# --- (f) failures ------------------------------------------------------------------------------


def _failures_section(run: _Run) -> str:
    failed = [row.root for row in run.generations if row.root.is_error]
    if not failed:
        return _section("failures", "Failures", _empty("No failed generations."))
    columns = [
        _Column("generation"),
        _Column("model"),
        _Column("user"),
        _Column("error type"),
        _Column("failed while"),
        _Column("message"),
        _Column("worker"),
        _Column("at", True),
    ]
    origin = run.origin_ns
    rows = [
        [
            f'<code title="{esc(_generation_id(root))}">{esc(_generation_id(root)[:8])}</code>',
            esc(_model(root)),
            esc(_user(root)),
            esc(root.attr_str("error.type") or "—"),
            esc(root.attr_str("error.phase") or "—"),
            esc(root.status_description or "—"),
            esc(_worker_of(root)),
            esc(f"{(root.start_ns - origin) / _NS_PER_S:,.2f} s"),
        ]
        for root in failed
    ]
    return _section("failures", "Failures", _table(columns, rows))


# --- the page ----------------------------------------------------------------------------------

_STYLE: Final = """
:root { color-scheme: light; }
* { -webkit-print-color-adjust: exact; print-color-adjust: exact; box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial,
  sans-serif; color: #1f2933; background: #fff; max-width: 1220px; margin: 24px auto;
  padding: 0 20px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 8px; border-bottom: 1px solid #d9e2ec;
  padding-bottom: 4px; }
h3 { font-size: 15px; margin: 20px 0 6px; }
.subtitle, .note { color: #52606d; margin: 4px 0 10px; }
.empty { color: #52606d; font-style: italic; padding: 12px; background: #f5f7fa;
  border-radius: 6px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr));
  gap: 10px; margin: 0; }
.card { border: 1px solid #d9e2ec; border-radius: 8px; padding: 10px 14px; }
.card dt { color: #52606d; font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card dd { margin: 0; }
.card .figure { font-size: 26px; font-weight: 600; font-variant-numeric: tabular-nums; }
.card .detail { color: #52606d; font-size: 12px; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 14px; margin: 6px 0 8px; font-size: 12px; }
.legend .key { display: inline-flex; align-items: center; gap: 5px; }
svg { max-width: 100%; height: auto; display: block; }
svg.swatch, svg.strip { display: inline-block; vertical-align: middle; }
svg text { font-size: 11px; fill: #3e4c59; }
svg text.label { font-size: 12px; fill: #1f2933; }
svg text.group { font-size: 12px; font-weight: 600; fill: #102a43; }
svg text.axis-label { font-size: 12px; fill: #52606d; }
svg .grid { stroke: #e4e7eb; stroke-width: 1; }
svg .axis { stroke: #9aa5b1; stroke-width: 1; }
svg .life { stroke: #9aa5b1; stroke-width: 1; stroke-dasharray: 3 2; }
svg .bar { stroke: #fff; stroke-width: .5; }
svg .swatch { stroke: #9aa5b1; stroke-width: .5; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13px; }
th, td { border-bottom: 1px solid #e4e7eb; padding: 4px 10px; text-align: left;
  vertical-align: top; }
thead th { background: #f0f4f8; }
tfoot th { border-top: 2px solid #bcccdc; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.breakdown { color: #52606d; font-size: 11px; margin-top: 2px; }
.outcome.failed { color: #c92a2a; font-weight: 600; }
.outcome.cancelled { color: #6c757d; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
@media print {
  body { margin: 0; max-width: none; padding: 0; font-size: 12px; }
  h2 { break-after: avoid; }
  table, .cards, svg.histogram, svg.costbars { break-inside: avoid; }
}
"""


def _render(run: _Run, title: str) -> str:
    summary = run.summary()
    if run.empty:
        ignored = f" ({len(run.spans)} spans, none of them swarmpod's)" if run.spans else ""
        body = _empty(
            f"Nothing to show: the trace file holds no generation, worker or cost spans{ignored}."
        )
        subtitle = "An empty trace."
    else:
        body = "\n".join(
            [
                _summary_section(run, summary),
                _timeline_section(run),
                _cold_start_section(run),
                _cost_section(run),
                _slowest_section(run),
                _failures_section(run),
            ]
        )
        subtitle = f"{len(run.spans)} spans from {_utc(run.origin_ns)}."
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f'<header>\n<h1>{esc(title)}</h1>\n<p class="subtitle">{esc(subtitle)}</p>\n</header>\n'
        f"<main>\n{body}\n</main>\n</body>\n</html>\n"
    )

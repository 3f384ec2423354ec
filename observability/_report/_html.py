"""The report page: its sections, tables and style, in HTML with the SVG charts inline.

In order: a summary (generations by outcome, workers, cold starts, GPU-seconds and cost), the
timeline, a histogram of cold-start times, the cost split by user and by model, the slowest
generations with their phase breakdown, and the failures. Every text that comes from a span is
escaped here.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from .._svg_plot import esc
from ._layout import Bins
from ._model import (
    COST_PARTS,
    CostLine,
    ReportSummary,
    Row,
    Run,
    cold,
    cost_lines,
    generation_id,
    model_of,
    number,
    outcome,
    prompt_of,
    user_of,
    worker_of,
)
from ._svg import (
    COST_COLOURS,
    colour,
    cost_bars_svg,
    histogram_svg,
    phase_order,
    phase_strip,
    swatch,
    timeline_svg,
)
from ._text import NS_PER_S, gpu, seconds, short_prompt, usd, utc

__all__ = ["render_page"]

_SLOWEST: Final = 10
_EQUAL_WITHIN_S: Final = 0.005
_PROMPT_CHARS: Final = 40
_PART_NAMES: Final = tuple(name for name, _ in COST_PARTS)


def render_page(run: Run, title: str) -> str:
    """The whole page (HTML5, self-contained) for ``run``."""
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
        subtitle = f"{len(run.spans)} spans from {utc(run.origin_ns)}."
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f'<header>\n<h1>{esc(title)}</h1>\n<p class="subtitle">{esc(subtitle)}</p>\n</header>\n'
        f"<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


# --- pieces ----------------------------------------------------------------------------------


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
        f'<span class="key">{swatch(name, fill)} {esc(name)}</span>' for name, fill in entries
    )
    return f'<div class="legend">{keys}</div>'


def _generation_cell(row: Row) -> str:
    """A generation's short id, the whole id on hover."""
    gen_id = generation_id(row.root)
    return f'<code title="{esc(gen_id)}">{esc(gen_id[:8])}</code>'


def _prompt_cell(row: Row) -> str:
    """A generation's prompt, shortened; the whole prompt on hover."""
    prompt = prompt_of(row.root)
    if prompt is None:
        return "—"
    return f'<span title="{esc(prompt)}">{esc(short_prompt(row.root, _PROMPT_CHARS))}</span>'


# --- (a) summary -----------------------------------------------------------------------------


def _summary_section(run: Run, summary: ReportSummary) -> str:
    succeeded = sum(outcome(row.root) == "succeeded" for row in run.generations)
    difference = summary.gpu_seconds_attributed - summary.gpu_seconds_billed
    agreement = (
        "equal to the attributed GPU-seconds ✓"
        if abs(difference) < _EQUAL_WITHIN_S
        else f"differs from the attributed GPU-seconds by {difference:+,.2f} s"
    )
    worker_usd = math.fsum(number(row.root, "swarmpod.cost_usd") for row in run.workers)
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
            gpu(summary.gpu_seconds_attributed),
            "from the Cost:* spans (boot + execution + idle tail)",
        ),
        (
            "GPU-seconds billed",
            gpu(summary.gpu_seconds_billed),
            f"estimated for workers; {agreement}",
        ),
        ("Cost", usd(summary.cost_usd), f"from the Cost:* spans; workers: {usd(worker_usd)}"),
    ]
    items = "\n".join(
        f'<div class="card"><dt>{esc(name)}</dt><dd class="figure">{esc(figure)}</dd>'
        f'<dd class="detail">{esc(detail)}</dd></div>'
        for name, figure, detail in cards
    )
    return _section("summary", "Summary", f'<dl class="cards">\n{items}\n</dl>{_notes(run)}')


def _notes(run: Run) -> str:
    notes = []
    stray = run.stray_phases()
    if stray:
        notes.append(
            f"{stray} state spans belong to a generation or worker whose root span is not in "
            "the file (was the run interrupted?); they are not drawn."
        )
    other = run.other_spans()
    if other:
        notes.append(f"{other} other spans (HTTP requests and the like) are not shown.")
    return "".join(f'\n<p class="note">{esc(note)}</p>' for note in notes)


# --- (b) timeline ----------------------------------------------------------------------------


def _timeline_section(run: Run) -> str:
    if not run.rows:
        return _section("timeline", "Timeline", _empty("No generations or workers to draw."))
    phases = sorted({visit.phase for row in run.rows for visit in row.visits}, key=phase_order)
    intro = (
        f'<p class="note">Seconds from {esc(utc(run.origin_ns))}. One bar per state visited; '
        "a thin bar under a worker's Idle and Busy bars is its Warm state. Hover a bar for its "
        "duration, a label for the whole prompt.</p>"
    )
    if "Queued" in phases:
        intro += (
            "\n<p class=\"note\">A lease's Queued bar holds its worker's boot: RunPod reports a "
            "lease job as queued until the booted worker takes it, and only a /health call, "
            "which is spent on wake-ups but not on each lease, tells booting from waiting.</p>"
        )
    legend = _legend((phase, colour(phase)) for phase in phases)
    return _section("timeline", "Timeline", intro + legend + timeline_svg(run))


# --- (c) cold starts -------------------------------------------------------------------------


def _cold_start_section(run: Run) -> str:
    cold_roots = [row.root for row in run.generations if cold(row.root)]
    values = sorted(
        v for root in cold_roots if (v := root.attr_float("swarmpod.startup_s")) is not None
    )
    unmeasured = len(cold_roots) - len(values)
    missing = (
        f" {unmeasured} cold generation(s) never got a worker ready, so have no startup time."
        if unmeasured
        else ""
    )
    if not values:
        message = "No cold starts." if not cold_roots else f"No measured cold starts.{missing}"
        return _section("cold-starts", "Cold starts", _empty(message))
    content = f'<p class="note">{esc(_startup_stats(values) + missing)}</p>\n'
    return _section("cold-starts", "Cold starts", content + histogram_svg(Bins.of(values)))


def _startup_stats(values: Sequence[float]) -> str:
    """Count, min, median, p90 and max of sorted startup times."""
    p90 = (
        statistics.quantiles(values, n=10, method="inclusive")[-1] if len(values) > 1 else values[0]
    )
    plural = "s" if len(values) != 1 else ""
    return (
        f"{len(values)} cold start{plural} (from asking for a worker to the worker ready): "
        f"min {seconds(values[0])} · median {seconds(statistics.median(values))} · "
        f"p90 {seconds(p90)} · max {seconds(values[-1])}."
    )


# --- (d) cost split --------------------------------------------------------------------------


def _cost_cells(line: CostLine) -> list[str]:
    figures = [gpu(part) for part in line.parts] + [gpu(line.total), usd(line.usd)]
    return [esc(line.name), str(line.count), *figures]


def _cost_section(run: Run) -> str:
    if not run.costs:
        message = "No Cost spans: a cost settles when its worker stops being billed."
        return _section("cost", "Cost split", _empty(message))
    total = CostLine.of("Total", run.costs)
    columns = [
        _Column("user"),
        _Column("Cost spans", True),
        *(_Column(f"{name} GPU-s", True) for name in _PART_NAMES),
        _Column("total GPU-s", True),
        _Column("USD", True),
    ]
    by_user = cost_lines(run.costs, "user")
    by_model = cost_lines(run.costs, "model")
    model_columns = [_Column("model"), *columns[1:]]
    content = "\n".join(
        [
            "<h3>By user</h3>",
            _legend(zip(_PART_NAMES, COST_COLOURS, strict=True)),
            cost_bars_svg(by_user, _PART_NAMES),
            _table(columns, [_cost_cells(c) for c in by_user], _cost_cells(total)),
            "<h3>By model</h3>",
            _table(model_columns, [_cost_cells(c) for c in by_model], _cost_cells(total)),
        ]
    )
    return _section("cost", "Cost split", content)


# --- (e) slowest generations -----------------------------------------------------------------


def _slowest_section(run: Run) -> str:
    if not run.generations:
        return _section("slowest", "Slowest generations", _empty("No generations."))
    slowest = sorted(
        run.generations,
        key=lambda row: (-row.root.duration_s, row.root.start_ns, generation_id(row.root)),
    )[:_SLOWEST]
    longest = slowest[0].root.duration_s or 1.0
    columns = [
        _Column("#", True),
        _Column("generation"),
        _Column("prompt"),
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


def _slowest_cells(rank: int, row: Row, longest: float) -> list[str]:
    root = row.root
    startup = root.attr_float("swarmpod.startup_s")
    start = "warm"
    if cold(root):
        start = "cold" + (f" ({seconds(startup)} startup)" if startup is not None else "")
    phase_seconds = row.phase_seconds()
    breakdown = " · ".join(
        f"{phase} {seconds(s)}" for phase, s in phase_seconds.items() if s >= 0.005
    )
    return [
        str(rank),
        _generation_cell(row),
        _prompt_cell(row),
        esc(model_of(root)),
        esc(user_of(root)),
        f'<span class="outcome {esc(outcome(root))}">{esc(outcome(root))}</span>',
        esc(start),
        esc(worker_of(root)),
        esc(seconds(root.duration_s)),
        phase_strip(phase_seconds, longest) + f'<div class="breakdown">{esc(breakdown)}</div>',
    ]


# --- (f) failures ----------------------------------------------------------------------------


def _failures_section(run: Run) -> str:
    failed = [row for row in run.generations if row.root.is_error]
    if not failed:
        return _section("failures", "Failures", _empty("No failed generations."))
    columns = [
        _Column("generation"),
        _Column("prompt"),
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
            _generation_cell(row),
            _prompt_cell(row),
            esc(model_of(row.root)),
            esc(user_of(row.root)),
            esc(row.root.attr_str("error.type") or "—"),
            esc(row.root.attr_str("error.phase") or "—"),
            esc(row.root.status_description or "—"),
            esc(worker_of(row.root)),
            esc(f"{(row.root.start_ns - origin) / NS_PER_S:,.2f} s"),
        ]
        for row in failed
    ]
    return _section("failures", "Failures", _table(columns, rows))


# --- style -----------------------------------------------------------------------------------

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

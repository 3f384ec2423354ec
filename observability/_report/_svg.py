"""The report's charts as inline SVG: the timeline, the cold-start histogram, the cost bars,
the phase strips, and the colour of each phase."""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from typing import Final

from .._svg_plot import group, line, rect, svg, text, ticks
from ._layout import (
    H_BOTTOM,
    H_HEIGHT,
    H_LEFT,
    H_RIGHT,
    H_TOP,
    H_WIDTH,
    T_AXIS,
    T_ROW,
    T_WIDTH,
    Bins,
    Scale,
    TimelineLayout,
    bar_box,
)
from ._model import CostLine, Row, Run, Visit
from ._text import NS_PER_S, clip, gpu, row_label, row_tooltip, seconds, usd

__all__ = [
    "COST_COLOURS",
    "colour",
    "cost_bars_svg",
    "histogram_svg",
    "phase_order",
    "phase_strip",
    "swatch",
    "timeline_svg",
]

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
COST_COLOURS: Final = ("#e07b39", "#2b7bd6", "#b8c2cc")
"""The colours of the cost parts (boot, execution, idle tail)."""
_STRIPE: Final = "#f5f7fa"


def colour(phase: str) -> str:
    """A phase's colour: fixed for the charts' own phases, stable for any other."""
    known = _PHASE_COLOURS.get(phase)
    if known is not None:
        return known
    return _OTHER_COLOURS[zlib.crc32(phase.encode("utf-8")) % len(_OTHER_COLOURS)]


def phase_order(phase: str) -> tuple[int, str]:
    """Known phases in their chart order, then the others by name."""
    known = list(_PHASE_COLOURS)
    return (known.index(phase), "") if phase in _PHASE_COLOURS else (len(known), phase)


def swatch(name: str, fill: str) -> str:
    """A legend's colour square."""
    return svg(
        12,
        12,
        [rect(0, 0, 12, 12, fill=fill, css_class="swatch")],
        label=name,
        css_class="swatch",
    )


# --- the timeline ----------------------------------------------------------------------------


def timeline_svg(run: Run) -> str:
    """One row per worker and per generation, one bar per state visited, on one time axis."""
    layout = TimelineLayout.of(run)
    parts = _time_axis(layout.scale, layout.height)
    for placed in layout.lines:
        if placed.heading is not None:
            parts.append(text(8, placed.y + 15, placed.heading, css_class="group"))
        elif placed.row is not None:
            parts.append(_timeline_row(placed.row, layout.scale, placed.y, placed.striped))
    return svg(
        T_WIDTH,
        layout.height,
        parts,
        label="timeline of workers and generations",
        css_class="timeline",
    )


def _time_axis(scale: Scale, height: float) -> list[str]:
    parts = []
    for tick in ticks(0.0, scale.span_s, target=10):
        x = scale.x_of_seconds(tick)
        label = f"{tick:g} s"
        parts.append(line(x, T_AXIS - 4, x, height - T_AXIS + 4, css_class="grid"))
        parts.append(text(x, T_AXIS - 8, label, anchor="middle", css_class="tick"))
        parts.append(text(x, height - T_AXIS + 16, label, anchor="middle", css_class="tick"))
    return parts


def _timeline_row(row: Row, scale: Scale, y: float, striped: bool) -> str:
    root = row.root
    parts = [rect(0, y, T_WIDTH, T_ROW, fill=_STRIPE, css_class="stripe")] if striped else []
    parts.append(text(8, y + 15, clip(row_label(row)), css_class="label", title=row_tooltip(row)))
    middle = y + T_ROW / 2
    parts.append(
        line(scale.x(root.start_ns), middle, scale.x(root.end_ns), middle, css_class="life")
    )
    parts.extend(_bar(visit, scale, y) for visit in row.visits)
    return group(parts, css_class="row")


def _bar(visit: Visit, scale: Scale, y: float) -> str:
    span = visit.span
    box = bar_box(visit, scale, y)
    start = (span.start_ns - scale.origin_ns) / NS_PER_S
    title = f"{span.name}\n{visit.phase}: {seconds(span.duration_s)} (from {start:,.2f} s)"
    return rect(
        box.left,
        box.top,
        box.width,
        box.height,
        fill=colour(visit.phase),
        css_class="bar",
        title=title,
        data={"phase": visit.phase, "span-id": span.span_id},
    )


# --- the cold-start histogram ----------------------------------------------------------------


def histogram_svg(bins: Bins) -> str:
    """Cold starts per startup-time bin."""
    plot_w = H_WIDTH - H_LEFT - H_RIGHT
    plot_h = H_HEIGHT - H_TOP - H_BOTTOM
    base = H_TOP + plot_h
    peak = max(bins.counts)
    y_ticks = [t for t in ticks(0, peak, target=5) if t == int(t)] or [0.0, float(peak)]
    top = max(peak, y_ticks[-1])
    bar_w = plot_w / len(bins.counts)
    parts = []
    for tick in y_ticks:
        y = base - tick / top * plot_h
        parts.append(line(H_LEFT, y, H_LEFT + plot_w, y, css_class="grid"))
        parts.append(text(H_LEFT - 6, y + 4, f"{tick:g}", anchor="end", css_class="tick"))
    label_every = math.ceil(len(bins.counts) / 12)
    for index, count in enumerate(bins.counts):
        x = H_LEFT + index * bar_w
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
        x = H_LEFT + index * bar_w
        parts.append(text(x, base + 16, f"{bins.edge(index):g}", anchor="middle", css_class="tick"))
    parts.append(line(H_LEFT, base, H_LEFT + plot_w, base, css_class="axis"))
    parts.append(
        text(
            H_LEFT + plot_w / 2,
            H_HEIGHT - 8,
            "startup time (s)",
            anchor="middle",
            css_class="axis-label",
        )
    )
    parts.append(
        text(
            14,
            H_TOP + plot_h / 2,
            "generations",
            anchor="middle",
            css_class="axis-label",
            rotate=-90,
        )
    )
    return svg(
        H_WIDTH, H_HEIGHT, parts, label="histogram of cold-start times", css_class="histogram"
    )


# --- cost bars and phase strips --------------------------------------------------------------


def cost_bars_svg(lines: Sequence[CostLine], part_names: Sequence[str]) -> str:
    """One stacked bar per line (a user): GPU-seconds by part, with the total and USD."""
    width, labels, figures, row = 900.0, 200.0, 190.0, 24.0
    plot_w = width - labels - figures
    longest = max((c.total for c in lines), default=0.0) or 1.0
    parts = []
    for index, cost in enumerate(lines):
        y = 6 + index * row
        parts.append(text(8, y + 13, clip(cost.name, 28), css_class="label", title=cost.name))
        x = labels
        for part, fill, part_s in zip(part_names, COST_COLOURS, cost.parts, strict=True):
            segment = part_s / longest * plot_w
            title = f"{cost.name}: {part} {gpu(part_s)} GPU-s"
            parts.append(rect(x, y, segment, 16, fill=fill, css_class="seg", title=title))
            x += segment
        summary = f"{gpu(cost.total)} GPU-s · {usd(cost.usd)}"
        parts.append(text(x + 6, y + 13, summary, css_class="tick"))
    height = 12 + row * len(lines)
    return svg(width, height, parts, label="GPU-seconds per user", css_class="costbars")


def phase_strip(phase_seconds: Mapping[str, float], longest: float) -> str:
    """A generation's phases as one strip, scaled to the ``longest`` generation."""
    width = 240.0
    x = 0.0
    parts = []
    for phase, duration in phase_seconds.items():
        segment = duration / longest * width
        title = f"{phase}: {seconds(duration)}"
        parts.append(rect(x, 0, segment, 12, fill=colour(phase), css_class="seg", title=title))
        x += segment
    return svg(width, 12, parts, label="phases", css_class="strip")

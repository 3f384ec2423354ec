"""The cost-latency frontier of each trace as a standalone SVG (the report's plot style).

One file per trace, one panel per FlashBoot regime. Each policy is a point at (GPU-seconds over
the cost floor, p50 added latency), medians over the seeds, with a thin line up to its p95;
the points no other point beats on both axes are drawn dark, labelled, and joined by the
frontier's steps; the clairvoyant floor is the cross at (1, its p50). Both axes are
logarithmic (latency as ``log(1 + s)``, so 0 s has a place).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from observability._svg_plot import esc, group, line, num, text

from ._figures import Summary
from ._tables import Report

__all__ = ["frontier_svg", "write_plots"]

_PANEL_W: Final = 430.0
_PANEL_H: Final = 350.0
_LEFT: Final = 56.0
_RIGHT: Final = 14.0
_TOP: Final = 56.0
_BOTTOM: Final = 44.0
_REGIMES: Final = (("flashboot", "FlashBoot granted"), ("cold", "FlashBoot never"))
_STYLE: Final = """
text { font: 11px system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
  fill: #3e4c59; }
text.title { font-size: 14px; font-weight: 600; fill: #102a43; }
text.panel { font-size: 12px; font-weight: 600; fill: #102a43; }
text.axis-label { font-size: 12px; fill: #52606d; }
text.label { fill: #1f2933; }
text.label.front { font-weight: 600; }
.grid { stroke: #e4e7eb; stroke-width: 1; }
.axis { stroke: #9aa5b1; stroke-width: 1; }
.spread { stroke: #9aa5b1; stroke-width: 1; }
.steps { stroke: #2f6f9f; stroke-width: 1.5; fill: none; stroke-dasharray: 4 3; }
.point { fill: #bcccdc; stroke: #627d98; stroke-width: 1; }
.point.front { fill: #2f6f9f; stroke: #102a43; }
.point.auto { fill: #e07b39; stroke: #8a3f0f; }
.p95 { fill: #fff; stroke: #9aa5b1; stroke-width: 1; }
.floor { stroke: #c92a2a; stroke-width: 2; }
"""
_COST_TICKS: Final = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0)
_LATENCY_TICKS: Final = (0.0, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)


def _short(policy: str) -> str:
    return policy.removeprefix("swarmpod-")


class _Axes:
    """Maps (cost ratio, added seconds) to a panel's pixels, both on log scales."""

    def __init__(self, left: float, points: Sequence[Summary]) -> None:
        ratios = [p.ratio.median for p in points if math.isfinite(p.ratio.median)] + [1.0]
        latencies = [p.added_p95_s.median for p in points if math.isfinite(p.added_p95_s.median)]
        self.x_low = math.log(min(ratios) * 0.9)
        self.x_high = math.log(max(ratios) * 1.1)
        self.y_high = math.log1p(max([1.0, *latencies]) * 1.2)
        self.left = left + _LEFT
        self.width = _PANEL_W - _LEFT - _RIGHT
        self.height = _PANEL_H - _TOP - _BOTTOM

    def x(self, ratio: float) -> float:
        span = self.x_high - self.x_low
        return self.left + (math.log(ratio) - self.x_low) / span * self.width

    def y(self, seconds: float) -> float:
        return _TOP + self.height - math.log1p(max(0.0, seconds)) / self.y_high * self.height

    def in_x(self, ratio: float) -> bool:
        return self.x_low <= math.log(ratio) <= self.x_high

    def in_y(self, seconds: float) -> bool:
        return math.log1p(seconds) <= self.y_high


def _circle(x: float, y: float, radius: float, css_class: str, title: str) -> str:
    return (
        f'<circle cx="{num(x)}" cy="{num(y)}" r="{num(radius)}" class="{esc(css_class)}">'
        f"<title>{esc(title)}</title></circle>"
    )


def _panel(left: float, heading: str, points: Sequence[Summary], floor_p50: float) -> str:
    axes = _Axes(left, points)
    base = _TOP + axes.height
    parts = [text(axes.left, _TOP - 12, heading, css_class="panel")]
    for tick in _COST_TICKS:
        if axes.in_x(tick):
            x = axes.x(tick)
            parts.append(line(x, _TOP, x, base, css_class="grid"))
            parts.append(text(x, base + 14, f"{tick:g}x", anchor="middle"))
    for tick in _LATENCY_TICKS:
        if axes.in_y(tick):
            y = axes.y(tick)
            parts.append(line(axes.left, y, axes.left + axes.width, y, css_class="grid"))
            parts.append(text(axes.left - 6, y + 4, f"{tick:g}", anchor="end"))
    parts.append(line(axes.left, base, axes.left + axes.width, base, css_class="axis"))
    parts.append(line(axes.left, _TOP, axes.left, base, css_class="axis"))
    parts.append(
        text(
            axes.left + axes.width / 2,
            base + 32,
            "GPU-seconds / cost floor (median over seeds)",
            anchor="middle",
            css_class="axis-label",
        )
    )
    parts.append(
        text(
            left + 14,
            _TOP + axes.height / 2,
            "added latency, s (p50 dot, p95 ring)",
            anchor="middle",
            css_class="axis-label",
            rotate=-90,
        )
    )
    drawn = [p for p in points if math.isfinite(p.ratio.median)]
    front = sorted((p for p in drawn if p.on_frontier), key=lambda p: p.ratio.median)
    steps = []
    for point in front:
        x, y = axes.x(point.ratio.median), axes.y(point.added_p50_s.median)
        steps.append(f"{num(x)},{num(y)}")
    if len(steps) > 1:
        parts.append(f'<polyline points="{" ".join(steps)}" class="steps"/>')
    fx, fy = axes.x(1.0), axes.y(floor_p50)
    parts.append(line(fx - 6, fy - 6, fx + 6, fy + 6, css_class="floor"))
    parts.append(line(fx - 6, fy + 6, fx + 6, fy - 6, css_class="floor"))
    parts.append(text(fx + 8, fy - 6, "floor", css_class="label"))
    for point in drawn:
        parts.append(_point(axes, point))
    return group(parts)


def _point(axes: _Axes, point: Summary) -> str:
    x = axes.x(point.ratio.median)
    p50, p95 = point.added_p50_s.median, point.added_p95_s.median
    y = axes.y(p50)
    title = (
        f"{point.policy}: {point.ratio.median:.2f}x the floor (worst {point.ratio.worst:.2f}x), "
        f"p50 +{p50:.1f} s, p95 +{p95:.1f} s"
        + ("" if point.on_frontier else f"; beaten by {', '.join(point.beaten_by)}")
    )
    classes = "point" + (" front" if point.on_frontier else "")
    if point.policy == "swarmpod-auto":
        classes += " auto"
    parts = []
    if math.isfinite(p95):
        parts.append(line(x, y, x, axes.y(p95), css_class="spread"))
        parts.append(_circle(x, axes.y(p95), 2.5, "p95", title))
    parts.append(_circle(x, y, 4.5 if point.on_frontier else 3.5, classes, title))
    label_class = "label front" if point.on_frontier else "label"
    parts.append(text(x + 6, y + 12, _short(point.policy), css_class=label_class, title=title))
    return group(parts)


def frontier_svg(report: Report, trace: str) -> str:
    """The frontier plot of ``trace``: one panel per regime, as a standalone SVG document."""
    panels = []
    regimes = [(key, words) for key, words in _REGIMES if any(
        s.trace == trace and s.regime == key for s in report.summaries
    )]  # fmt: skip
    for index, (regime, words) in enumerate(regimes):
        points = [s for s in report.summaries if s.trace == trace and s.regime == regime]
        floor_p50 = next(r.floor_p50_s for r in report.runs if r.trace == trace)
        panels.append(_panel(index * _PANEL_W, words, points, floor_p50))
    width, height = _PANEL_W * max(1, len(regimes)), _PANEL_H
    seeds = report.seeds
    title = (
        f"{trace}: cost vs added latency, seeds {seeds[0]}-{seeds[-1]} "
        "(dark: on the frontier; orange: swarmpod-auto)"
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {num(width)} {num(height)}" '
        f'width="{num(width)}" height="{num(height)}" role="img" aria-label="{esc(title)}">'
        f"<style>{_STYLE}</style>"
        f'<rect width="100%" height="100%" fill="#fff"/>'
        + text(8, 18, title, css_class="title")
        + "".join(panels)
        + "</svg>\n"
    )


def write_plots(report: Report, directory: Path) -> list[Path]:
    """Write ``frontier-<trace>.svg`` for every trace of ``report`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for trace in dict.fromkeys(s.trace for s in report.summaries):
        path = directory / f"frontier-{trace}.svg"
        path.write_text(frontier_svg(report, trace), encoding="utf-8")
        written.append(path)
    return written

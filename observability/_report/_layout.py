"""Where things go on the report's charts: time scales, rows, bars and histogram bins.

Pure geometry, in SVG user units: nothing here draws (:mod:`._svg` does).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from .._svg_plot import nice_step
from ._model import Row, Run, Visit
from ._text import NS_PER_S

__all__ = [
    "H_BOTTOM",
    "H_HEIGHT",
    "H_LEFT",
    "H_RIGHT",
    "H_TOP",
    "H_WIDTH",
    "T_AXIS",
    "T_ROW",
    "T_WIDTH",
    "Bins",
    "Box",
    "Placed",
    "Scale",
    "TimelineLayout",
    "bar_box",
]

# the timeline
T_WIDTH: Final = 1160.0
T_LABELS: Final = 300.0
T_RIGHT: Final = 16.0
T_AXIS: Final = 26.0
T_ROW: Final = 22.0
T_HEADER: Final = 22.0
T_MIN_BAR: Final = 2.0

# the cold-start histogram
H_WIDTH: Final = 640.0
H_HEIGHT: Final = 260.0
H_LEFT: Final = 56.0
H_BOTTOM: Final = 48.0
H_TOP: Final = 20.0
H_RIGHT: Final = 16.0
_H_MIN_BINS: Final = 6
_H_MIN_BIN_S: Final = 0.5


@dataclass(frozen=True)
class Scale:
    """Maps span times (ns) to x on the timeline."""

    origin_ns: int
    span_s: float
    left: float
    width: float

    def x(self, ns: int) -> float:
        """The x of a span time."""
        return self.left + (ns - self.origin_ns) / NS_PER_S / self.span_s * self.width

    def x_of_seconds(self, seconds: float) -> float:
        """The x of ``seconds`` after the origin."""
        return self.left + seconds / self.span_s * self.width


@dataclass(frozen=True)
class Placed:
    """A line of the timeline at ``y``: a group's heading, or a row (``striped``: shaded)."""

    y: float
    heading: str | None = None
    row: Row | None = None
    striped: bool = False


@dataclass(frozen=True)
class TimelineLayout:
    """The timeline's scale, height and lines: workers first, then generations."""

    scale: Scale
    height: float
    lines: tuple[Placed, ...]

    @classmethod
    def of(cls, run: Run) -> TimelineLayout:
        """Lay out ``run``'s rows (it has at least one)."""
        origin = run.origin_ns
        span_s = max((run.end_ns - origin) / NS_PER_S, 1e-3)
        scale = Scale(origin, span_s, T_LABELS, T_WIDTH - T_LABELS - T_RIGHT)
        groups = [("Workers", run.workers), ("Generations", run.generations)]
        headers = sum(bool(rows) for _, rows in groups)
        height = 2 * T_AXIS + T_ROW * len(run.rows) + T_HEADER * headers
        lines: list[Placed] = []
        y = T_AXIS
        for heading, rows in groups:
            if not rows:
                continue
            lines.append(Placed(y, heading=f"{heading} ({len(rows)})"))
            y += T_HEADER
            for index, row in enumerate(rows):
                lines.append(Placed(y, row=row, striped=index % 2 == 1))
                y += T_ROW
        return cls(scale, height, tuple(lines))


@dataclass(frozen=True)
class Box:
    """A rectangle."""

    left: float
    top: float
    width: float
    height: float


def bar_box(visit: Visit, scale: Scale, y: float) -> Box:
    """The bar of a state visited, in the row at ``y``: a thin one under nested states (Warm).

    Every bar is at least :data:`T_MIN_BAR` wide (a zero-length state shows) and ends inside
    the plot.
    """
    span = visit.span
    left = scale.x(span.start_ns)
    width = max(scale.x(span.end_ns) - left, T_MIN_BAR)
    left = min(left, scale.left + scale.width - width)
    top, height = (y + 17, 4.0) if visit.has_children else (y + 4, 12.0)
    return Box(left, top, width, height)


@dataclass(frozen=True)
class Bins:
    """Equal-width histogram bins from ``start``."""

    start: float
    width: float
    counts: tuple[int, ...]

    @classmethod
    def of(cls, values: Sequence[float]) -> Bins:
        """Bins for ``values`` (not empty)."""
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
        """The left edge of bin ``index`` (the right edge of ``index - 1``)."""
        return round(self.start + index * self.width, 10)

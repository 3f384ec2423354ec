"""The picture before it is written out: boxes, edge paths, labels and initial dots, with the
sizes both the layout and the SVG writer need."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from ._chart import Spec

__all__ = [
    "COMPOUND_TITLE",
    "DOT",
    "LABEL_FONT",
    "LABEL_H",
    "STATE_FONT",
    "Box",
    "EdgePath",
    "Label",
    "Piece",
    "Point",
    "Scene",
    "label_width",
    "text_width",
]

STATE_FONT: Final = 13.0
LABEL_FONT: Final = 11.0
LABEL_H: Final = 17.0
DOT: Final = 12.0
COMPOUND_TITLE: Final = 26.0
_LABEL_PAD_X: Final = 5.0

Point = tuple[float, float]
# A path piece: start, the two Bézier control points (None for a straight line), end.
Piece = tuple[Point, Point | None, Point | None, Point]


@dataclass
class Box:
    """A state's box."""

    spec: Spec
    x: float
    y: float
    w: float
    h: float


@dataclass
class EdgePath:
    """A transition's path (``kind`` ``edge``), or the arrow from an initial dot."""

    kind: str  # "edge" or "initial"
    source: str
    target: str
    pieces: list[Piece]


@dataclass
class Label:
    """A transition's label, centred at (cx, cy)."""

    source: str
    target: str
    text: str
    cx: float
    cy: float
    w: float


@dataclass
class Scene:
    """Everything drawn in one region (a chart, or inside a compound state)."""

    width: float
    height: float
    boxes: list[Box] = field(default_factory=list)
    paths: list[EdgePath] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    dots: list[Point] = field(default_factory=list)

    def add(self, other: Scene, dx: float, dy: float) -> None:
        """Copy ``other``'s items into this scene, moved by (dx, dy)."""

        def move(point: Point | None) -> Point | None:
            return None if point is None else (point[0] + dx, point[1] + dy)

        def moved(point: Point) -> Point:
            return (point[0] + dx, point[1] + dy)

        for box in other.boxes:
            self.boxes.append(Box(box.spec, box.x + dx, box.y + dy, box.w, box.h))
        for path in other.paths:
            pieces = [(moved(a), move(b), move(c), moved(d)) for a, b, c, d in path.pieces]
            self.paths.append(EdgePath(path.kind, path.source, path.target, pieces))
        for label in other.labels:
            self.labels.append(
                Label(label.source, label.target, label.text, label.cx + dx, label.cy + dy, label.w)
            )
        self.dots.extend(moved(dot) for dot in other.dots)


def text_width(text: str, size: float) -> float:
    """A generous estimate of the rendered width (wide sans-serif fonts such as DejaVu Sans)."""
    ems = 0.0
    for char in text:
        if char in "ijl.,:;'|!I":
            ems += 0.32
        elif char in "frt()[]-":
            ems += 0.42
        elif char in " /":
            ems += 0.36
        elif char in "mwMW":
            ems += 1.0
        elif char.isupper():
            ems += 0.78
        else:
            ems += 0.65
    return ems * size


def label_width(text: str) -> float:
    """The width of a transition label's box."""
    return text_width(text, LABEL_FONT) + 2 * _LABEL_PAD_X

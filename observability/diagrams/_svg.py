"""SVG pictures of the charts, laid out and drawn in pure Python (no Graphviz on the machines).

:func:`svg` reads the chart (:mod:`._chart`), lays it out (:mod:`._layout`) and writes the
scene out as SVG, here. The output is deterministic.
"""

from __future__ import annotations

from typing import Any, Final, cast
from xml.sax.saxutils import escape, quoteattr

from ._chart import regions_of, specs_of, transitions_of
from ._layout import layout
from ._scene import COMPOUND_TITLE, DOT, LABEL_FONT, LABEL_H, STATE_FONT, Box, Piece, Point, Scene

__all__ = ["svg"]

_FONT: Final = "DejaVu Sans, Verdana, Arial, sans-serif"
_FINAL_INSET: Final = 3.5
_MARGIN: Final = 12.0
_INK: Final = "#2d3748"
_EDGE_INK: Final = "#4a5568"
_STATE_FILL: Final = "#eef4fb"
_STATE_STROKE: Final = "#2f5d8a"
_COMPOUND_FILL: Final = "#f7f9fc"


def svg(chart: type) -> str:
    """A self-contained SVG picture of a chart class: its states, transitions and events.

    Deterministic: the same class always gives the same string, so the committed files can be
    compared with a fresh rendering (see ``write_diagrams``).
    """
    states = cast(Any, chart).states
    specs = specs_of(states)
    scene = layout(specs, (), regions_of(specs, transitions_of(states)))
    return _render(chart.__name__, scene)


def _num(value: float) -> str:
    text = f"{round(value, 1):.1f}".removesuffix(".0")
    return "0" if text == "-0" else text


def _pt(point: Point) -> str:
    return f"{_num(point[0])},{_num(point[1])}"


def _d(pieces: list[Piece]) -> str:
    parts = [f"M{_pt(pieces[0][0])}"]
    for _, c1, c2, end in pieces:
        if c1 is None or c2 is None:
            parts.append(f"L{_pt(end)}")
        else:
            parts.append(f"C{_pt(c1)} {_pt(c2)} {_pt(end)}")
    return " ".join(parts)


def _rect(x: float, y: float, w: float, h: float, rx: float, extra: str = "") -> str:
    return (
        f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(w)}" height="{_num(h)}" '
        f'rx="{_num(rx)}"{extra}/>'
    )


def _text(x: float, y: float, text: str, size: float) -> str:
    baseline = y + size * 0.35
    return (
        f'<text x="{_num(x)}" y="{_num(baseline)}" font-size="{_num(size)}" fill="{_INK}" '
        f'stroke="none">{escape(text)}</text>'
    )


def _state(box: Box) -> list[str]:
    spec = box.spec
    kind = "compound" if spec.children else "final" if spec.final else "simple"
    lines = [f'<g class="state {kind}" data-state={quoteattr(spec.id)}>']
    if spec.children:
        lines.append(_rect(box.x, box.y, box.w, box.h, 10, f' fill="{_COMPOUND_FILL}"'))
        lines.append(_text(box.x + box.w / 2, box.y + COMPOUND_TITLE / 2 + 2, spec.name, 13))
    else:
        lines.append(_rect(box.x, box.y, box.w, box.h, 8))
        if spec.final:
            inset = _FINAL_INSET
            lines.append(
                _rect(box.x + inset, box.y + inset, box.w - 2 * inset, box.h - 2 * inset, 5)
            )
        lines.append(_text(box.x + box.w / 2, box.y + box.h / 2, spec.name, STATE_FONT))
    lines.append("</g>")
    return lines


def _render(name: str, scene: Scene) -> str:
    width, height = scene.width + 2 * _MARGIN, scene.height + 2 * _MARGIN
    framed = Scene(width, height)
    framed.add(scene, _MARGIN, _MARGIN)
    arrow = f"{name.lower()}-arrow"
    lines = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_num(width)}" height="{_num(height)}" '
        f'viewBox="0 0 {_num(width)} {_num(height)}" font-family={quoteattr(_FONT)} '
        f'text-anchor="middle">',
        f"<title>{escape(name)}</title>",
        "<defs>",
        f'<marker id="{arrow}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="9" '
        'markerHeight="9" markerUnits="userSpaceOnUse" orient="auto">',
        f'<path d="M0,1 L10,5 L0,9 Z" fill="{_EDGE_INK}"/>',
        "</marker>",
        "</defs>",
        f'<rect width="{_num(width)}" height="{_num(height)}" fill="#ffffff"/>',
        f'<g class="states" fill="{_STATE_FILL}" stroke="{_STATE_STROKE}" stroke-width="1.5">',
    ]
    compounds = [box for box in framed.boxes if box.spec.children]
    simple = [box for box in framed.boxes if not box.spec.children]
    for box in compounds:
        lines.extend(_state(box))
    lines.append("</g>")
    lines.append(f'<g class="edges" fill="none" stroke="{_EDGE_INK}" stroke-width="1.3">')
    for path in framed.paths:
        ends = f"data-target={quoteattr(path.target)}"
        if path.kind == "edge":
            ends = f"data-source={quoteattr(path.source)} {ends}"
        lines.append(
            f'<path class="{path.kind}" {ends} d="{_d(path.pieces)}" marker-end="url(#{arrow})"/>'
        )
    lines.append("</g>")
    lines.append(f'<g class="initial-dots" fill="{_INK}">')
    lines.extend(
        f'<circle cx="{_num(x)}" cy="{_num(y)}" r="{_num(DOT / 2 - 1)}"/>' for x, y in framed.dots
    )
    lines.append("</g>")
    lines.append(
        f'<g class="states" fill="{_STATE_FILL}" stroke="{_STATE_STROKE}" stroke-width="1.5">'
    )
    for box in simple:
        lines.extend(_state(box))
    lines.append("</g>")
    lines.append('<g class="labels">')
    for label in framed.labels:
        lines.append(
            f'<g class="label" data-source={quoteattr(label.source)} '
            f"data-target={quoteattr(label.target)}>"
        )
        x, y = label.cx - label.w / 2, label.cy - LABEL_H / 2
        lines.append(_rect(x, y, label.w, LABEL_H, 3, ' fill="#ffffff"'))
        lines.append(_text(label.cx, label.cy, label.text, LABEL_FONT))
        lines.append("</g>")
    lines.append("</g>")
    lines.append("</svg>")
    return "\n".join(lines) + "\n"

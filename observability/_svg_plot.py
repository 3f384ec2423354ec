"""Building blocks of the report's inline SVG charts: escaped elements, axis ticks, formats.

Every function returns markup as text. Text content and attribute values are HTML-escaped
here, so callers pass raw strings (a model name is user input). Numbers are written with at
most two decimals, so the same input always gives the same markup.

>>> rect(0, 1.5, 10, 2, fill="#fff", title="a < b")
'<rect x="0" y="1.5" width="10" height="2" fill="#fff"><title>a &lt; b</title></rect>'
>>> ticks(0, 23, target=5)
[0.0, 5.0, 10.0, 15.0, 20.0]
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping

__all__ = [
    "esc",
    "group",
    "line",
    "nice_step",
    "num",
    "rect",
    "svg",
    "text",
    "ticks",
]

Attributes = Mapping[str, str | float | None]


def esc(value: str) -> str:
    """``value`` escaped for HTML text and attribute values (quotes included)."""
    return html.escape(value, quote=True)


def num(value: float) -> str:
    """A coordinate or size: at most two decimals, no trailing zeros, never ``-0``."""
    formatted = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if formatted in ("-0", "") else formatted


def _attributes(attributes: Attributes) -> str:
    parts = []
    for key, value in attributes.items():
        if value is None:
            continue
        shown = value if isinstance(value, str) else num(value)
        parts.append(f' {key}="{esc(shown)}"')
    return "".join(parts)


def _element(tag: str, attributes: Attributes, content: str = "") -> str:
    return f"<{tag}{_attributes(attributes)}>{content}</{tag}>"


def _title(title: str | None) -> str:
    return "" if title is None else f"<title>{esc(title)}</title>"


def rect(
    x: float,
    y: float,
    width: float,
    height: float,
    *,
    fill: str,
    css_class: str | None = None,
    title: str | None = None,
    data: Mapping[str, str] | None = None,
) -> str:
    """A rectangle, with an optional class, tooltip (``<title>``) and ``data-*`` attributes."""
    attributes: dict[str, str | float | None] = {
        "x": x,
        "y": y,
        "width": width,
        "height": height,
        "fill": fill,
        "class": css_class,
    }
    attributes.update({f"data-{key}": value for key, value in (data or {}).items()})
    return _element("rect", attributes, _title(title))


def text(
    x: float,
    y: float,
    content: str,
    *,
    anchor: str = "start",
    css_class: str | None = None,
    title: str | None = None,
    rotate: float | None = None,
) -> str:
    """A text label at (x, y) (its baseline); ``rotate`` turns it around that point."""
    transform = None if rotate is None else f"rotate({num(rotate)} {num(x)} {num(y)})"
    attributes: dict[str, str | float | None] = {
        "x": x,
        "y": y,
        "text-anchor": None if anchor == "start" else anchor,
        "class": css_class,
        "transform": transform,
    }
    return _element("text", attributes, _title(title) + esc(content))


def line(x1: float, y1: float, x2: float, y2: float, *, css_class: str) -> str:
    """A line styled by its class."""
    return _element("line", {"x1": x1, "y1": y1, "x2": x2, "y2": y2, "class": css_class})


def group(parts: Iterable[str], *, css_class: str | None = None) -> str:
    """A ``<g>`` around ``parts``."""
    return _element("g", {"class": css_class}, "".join(parts))


def svg(width: float, height: float, parts: Iterable[str], *, label: str, css_class: str) -> str:
    """An inline SVG image (no namespace URL needed inside HTML5) that scales to its box."""
    attributes: dict[str, str | float | None] = {
        "class": css_class,
        "viewBox": f"0 0 {num(width)} {num(height)}",
        "width": width,
        "height": height,
        "role": "img",
        "aria-label": label,
    }
    return _element("svg", attributes, "".join(parts))


def nice_step(raw: float) -> float:
    """The smallest of 1, 2, 5 times a power of ten that is at least ``raw`` (> 0)."""
    if raw <= 0 or not math.isfinite(raw):
        return 1.0
    power = 10.0 ** math.floor(math.log10(raw))
    for factor in (1.0, 2.0, 5.0, 10.0):
        if factor * power >= raw * (1 - 1e-9):
            return factor * power
    return 10.0 * power


def ticks(low: float, high: float, *, target: int = 8) -> list[float]:
    """Round tick values covering [low, high], about ``target`` of them."""
    step = nice_step((high - low) / max(1, target))
    first = math.ceil(low / step - 1e-9)
    last = math.floor(high / step + 1e-9)
    return [round(index * step, 10) for index in range(first, last + 1)]

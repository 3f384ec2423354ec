"""Model objects as a remote SwarmUI offers them (specs/swarmui-api.md §5.1, §6).

SwarmSwarmBackend copies every model object it discovers and casts a few keys
(``T2IModel.FromNetObject``); :func:`remote_model` makes such a copy.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

__all__ = ["as_int", "remote_model", "remote_models"]

_RESOLUTION: Final = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def as_int(value: Any) -> int | None:
    """``value`` as an int (not a bool); None when it is none."""
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _resolution(model: Mapping[str, Any]) -> tuple[int, int]:
    """``(width, height)`` from ``resolution`` ``"WxH"``, else ``(0, 0)``."""
    match = _RESOLUTION.match(str(model.get("resolution") or ""))
    return (int(match[1]), int(match[2])) if match else (0, 0)


def remote_model(model: Any) -> dict[str, Any] | None:
    """A model object as this service offers it: a copy with ``local: false`` and the keys
    ``T2IModel.FromNetObject`` casts (§6) always present; None when it has no string ``name``.

    ``loaded`` keeps the worker's answer at discovery time as a bool (False when missing).
    ``standard_width`` / ``standard_height`` keep the worker's ints; when missing or not
    numbers they come from ``resolution`` (``"WxH"``), else 0 (SwarmUI's "unknown").

    >>> model = remote_model({"name": "a.safetensors", "resolution": "768x512", "local": True})
    >>> model["local"], model["loaded"], model["standard_width"], model["standard_height"]
    (False, False, 768, 512)
    >>> remote_model({"title": "no name"}) is None
    True
    """
    if not isinstance(model, Mapping) or not isinstance(model.get("name"), str):
        return None
    copy = dict(model)
    width, height = _resolution(copy)
    copy["local"] = False
    copy["loaded"] = bool(copy.get("loaded", False))
    copy["standard_width"] = _first_int(copy.get("standard_width"), width)
    copy["standard_height"] = _first_int(copy.get("standard_height"), height)
    return copy


def _first_int(value: Any, fallback: int) -> int:
    number = as_int(value)
    return fallback if number is None else number


def remote_models(models: Iterable[Any]) -> tuple[dict[str, Any], ...]:
    """Normalized copies, one per name (a later object of the same name replaces the earlier,
    as SwarmSwarmBackend's dictionary does), in first-seen order."""
    by_name: dict[str, dict[str, Any]] = {}
    for model in models:
        copy = remote_model(model)
        if copy is not None:
            by_name[copy["name"]] = copy
    return tuple(by_name.values())

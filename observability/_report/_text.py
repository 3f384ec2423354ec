"""What the report says in words and figures: numbers, times, and the labels of rows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from .._trace_file import SpanRecord
from ._model import (
    Row,
    cold,
    generation_id,
    model_of,
    number,
    outcome,
    prompt_of,
    user_of,
    worker_of,
)

__all__ = [
    "LABEL_CHARS",
    "NS_PER_S",
    "clip",
    "gpu",
    "row_label",
    "row_tooltip",
    "seconds",
    "short_prompt",
    "usd",
    "utc",
]

NS_PER_S: Final = 1e9
LABEL_CHARS: Final = 38
"""What fits the timeline's label column."""
_MIN_PROMPT_CHARS: Final = 14
_TOOLTIP_PROMPT_CHARS: Final = 300
_MODEL_EXTENSIONS: Final = (".safetensors", ".ckpt", ".gguf", ".sft", ".pt", ".bin")


def seconds(value: float) -> str:
    """``12.34 s`` (one decimal from 100 s on)."""
    return f"{value:,.2f} s" if abs(value) < 100 else f"{value:,.1f} s"


def gpu(value: float) -> str:
    """GPU-seconds, two decimals."""
    return f"{value:,.2f}"


def usd(value: float) -> str:
    """Dollars, four decimals."""
    return f"${value:,.4f}"


def clip(label: str, limit: int = LABEL_CHARS) -> str:
    """``label`` cut to ``limit`` characters, an ellipsis marking the cut."""
    return label if len(label) <= limit else label[: limit - 1] + "…"


def utc(ns: int) -> str:
    """A span time as ``YYYY-mm-dd HH:MM:SS UTC``."""
    return datetime.fromtimestamp(ns / NS_PER_S, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def short_model(model: str) -> str:
    """``OfficialStableDiffusion/sd_xl_base_1.0.safetensors`` → ``sd_xl_base_1.0``."""
    name = model.rstrip("/").rpartition("/")[2] or model
    for extension in _MODEL_EXTENSIONS:
        name = name.removesuffix(extension)
    return name or model


def short_prompt(root: SpanRecord, limit: int) -> str:
    """A generation's prompt on one line, cut to ``limit``; its short id when it has none."""
    prompt = prompt_of(root)
    if prompt is None:
        return generation_id(root)[:8]
    return clip(" ".join(prompt.split()), limit)


def _generation_label(root: SpanRecord) -> str:
    """``prompt… · model · user``, the prompt cut to the room the rest leaves.

    The model is the one asked for (``default model`` when none was); the user only when
    there is one.
    """
    model = root.attr_str("swarmpod.model")
    user = root.attr_str("swarmpod.user")
    rest = f" · {short_model(model) if model else 'default model'}" + (f" · {user}" if user else "")
    room = max(_MIN_PROMPT_CHARS, LABEL_CHARS - len(rest))
    return clip(short_prompt(root, room) + rest)


def _worker_label(root: SpanRecord) -> str:
    protocol = root.attr_str("swarmpod.protocol")
    suffix = f" ({protocol})" if protocol else ""
    worker = root.attr_str("swarmpod.worker.id")
    if worker:
        return f"{worker}{suffix}"
    lease = root.attr_str("swarmpod.lease.id") or root.span_id
    return f"lease {lease}{suffix}, no worker"


def row_label(row: Row) -> str:
    """The label of a timeline row (a generation's fits :data:`LABEL_CHARS` characters)."""
    return _generation_label(row.root) if row.is_generation else _worker_label(row.root)


def row_tooltip(row: Row) -> str:
    """What the label of a row shortens, in full."""
    root = row.root
    if row.is_generation:
        what = f"generation {generation_id(root)} of {user_of(root)}, {model_of(root)}"
        prompt = prompt_of(root)
        if prompt is not None:
            what += f"\n{clip(prompt, _TOOLTIP_PROMPT_CHARS)}"
        how = f"{outcome(root)}, {'cold' if cold(root) else 'warm'}"
    else:
        lease = root.attr_str("swarmpod.lease.id") or "—"
        what = f"worker {worker_of(root)}, lease {lease}"
        how = f"{gpu(number(root, 'swarmpod.gpu_seconds.billed'))} GPU-s billed"
    return f"{root.name}\n{what}\n{seconds(root.duration_s)}, {how}"

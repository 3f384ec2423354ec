"""Writing a generation's images to disk, and the line that sums a generation up."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from .._result import GenerationResult

__all__ = ["file_stem", "summary", "write_images"]


def write_images(result: GenerationResult, out: Path, *, stem: str) -> list[Path]:
    """Write every image of ``result`` as PNG under ``out``, never overwriting a file."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for index, image in enumerate(result.images):
        seed = "x" if image.seed is None else str(image.seed)
        path = out / f"{stem}-{index:02d}-seed{seed}.png"
        bump = 1
        while path.exists():
            path = out / f"{stem}-{index:02d}-seed{seed}-{bump}.png"
            bump += 1
        path.write_bytes(image.data)
        written.append(path)
    return written


def summary(result: GenerationResult, written: Sequence[Path]) -> str:
    """One line: cold start or warm, generation and total seconds, where the images went."""
    t = result.timings
    start = f"cold start {t.startup:.1f} s" if result.cold_start else "warm worker"
    return (
        f"{start} · generation {t.generating:.1f} s · total {t.total:.1f} s · "
        f"{len(written)} image(s) written to {written[0].parent if written else '-'}"
    )


def file_stem() -> str:
    """The file name stem of this run's images: ``swarmpod-YYYYmmdd-HHMMSS``."""
    return dt.datetime.now().strftime("swarmpod-%Y%m%d-%H%M%S")

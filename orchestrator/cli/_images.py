"""Writing a generation's images to disk, and the line that sums a generation up."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Sequence
from pathlib import Path

from rich.markup import escape

from .._result import GenerationResult
from ..errors import SettingsError
from ._console import console

__all__ = ["check_out", "file_stem", "summary", "write_images", "write_images_or_keep"]


def check_out(out: Path) -> None:
    """Refuse an ``--out`` that cannot take files now, before any worker is woken.

    Raises:
        SettingsError: the directory cannot be created or written (the CLI exits 2).
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".swarmpod-probe-"):
            pass
    except OSError as exc:
        raise SettingsError(
            "--out", f"cannot write images to {out}: {exc.strerror or exc}", source="command line"
        ) from None


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


def write_images_or_keep(result: GenerationResult, out: Path, *, stem: str) -> list[Path] | None:
    """:func:`write_images`; when ``out`` fails after all (the GPU time is spent), the images
    go to a new temporary directory instead and the error says where. None: written elsewhere.
    """
    try:
        return write_images(result, out, stem=stem)
    except OSError as exc:
        failure = exc.strerror or str(exc)
    count = len(result.images)
    try:
        kept = write_images(result, Path(tempfile.mkdtemp(prefix="swarmpod-images-")), stem=stem)
    except OSError as exc:
        console.print(
            f"[red]error[/]: could not write the {count} image(s) to {escape(str(out))} "
            f"({escape(failure)}), nor to a temporary directory ({escape(str(exc))})",
            soft_wrap=True,
        )
        return None
    console.print(
        f"[red]error[/]: could not write the images to {escape(str(out))} ({escape(failure)}); "
        f"the {count} image(s) are kept in {escape(str(kept[0].parent))}",
        soft_wrap=True,
    )
    for path in kept:
        print(path)
    return None


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

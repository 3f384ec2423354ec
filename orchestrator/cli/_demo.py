"""``swarmpod demo``: a short demo on the embedded emulator (what ``make run`` runs).

It leaves the images, ``OUT/trace.jsonl`` (unless ``--trace-file``) and the lifecycle report
``OUT/report.html``.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import anyio
from rich.markup import escape
from rich.table import Table

from .._result import GenerationResult
from ..settings import Settings
from ._command import Command, Subparsers
from ._console import ProgressView, console, progress_bar
from ._embedded import embedded_settings
from ._images import check_out, file_stem, write_images_or_keep
from ._recording import RECORD_HELP, orchestrator_for
from ._sigterm import released_on_sigterm

__all__ = ["DEMO", "DEMO_PROMPTS", "demo", "write_demo_report"]

DEMO_PROMPTS: Final = (
    "a lighthouse on a cliff at dawn, oil painting",
    "a red fox in fresh snow, photograph",
    "a paper boat on a rainy street, watercolor",
)
"""The demo's three prompts, in the order they are sent."""
_SHORT_STATE: Final = {"ShuttingDown": "Release"}


def _declare(commands: Subparsers, traced: argparse.ArgumentParser) -> None:
    demo = commands.add_parser(
        "demo",
        help="a short demo on the embedded emulator",
        parents=[traced],
        description="Writes the images, OUT/trace.jsonl (unless --trace-file) and OUT/report.html.",
    )
    demo.add_argument("--out", type=Path, default=Path("output"))
    demo.add_argument("--cold-start", type=float, default=3.0, help="emulated cold start (s)")
    demo.add_argument("--record", type=Path, metavar="FILE", help=RECORD_HELP)


def _short_path(path: Sequence[str]) -> str:
    return ">".join(_SHORT_STATE.get(state, state) for state in path)


async def demo(args: argparse.Namespace) -> int:
    """Two generations at once lease two workers; a third reuses the first one warm."""
    console.print(
        "[bold]swarmpod demo[/] on the embedded emulator (no GPU; cold start "
        f"{args.cold_start:g} s, real time): two generations at once lease two workers, "
        "a third arrives once the first is done and reuses its worker warm; every worker "
        "is released when the demo ends."
    )
    base = Settings.load(env={}, overrides={"StartupTimeoutSec": 60})
    results: dict[int, GenerationResult] = {}
    async with contextlib.AsyncExitStack() as stack:
        settings = await stack.enter_async_context(
            embedded_settings(base, cold_start_s=args.cold_start)
        )
        orch = orchestrator_for(settings, args.record)
        await stack.enter_async_context(orch)
        first_done = anyio.Event()
        with progress_bar() as progress:
            view = ProgressView(progress)

            async def one(index: int) -> None:
                prompt = DEMO_PROMPTS[index]
                track = view.track(prompt[:28])

                params = {"prompt": prompt, "width": 512, "height": 512, "steps": 40}
                results[index] = await orch.generate(params, images=2, on_progress=track)
                if index == 0:
                    first_done.set()

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(one, 0)
                tasks.start_soon(one, 1)
                await first_done.wait()
                tasks.start_soon(one, 2)

    table = Table(title="swarmpod demo")
    for column in ("prompt", "worker", "start", "generation", "chart path"):
        table.add_column(column)
    stem = file_stem()
    files = unwritten = 0
    for index in sorted(results):
        result = results[index]
        written = write_images_or_keep(result, args.out, stem=f"{stem}-{index}")
        if written is None:  # kept elsewhere (said where); the other results too
            unwritten += 1
            written = []
        start = f"cold {result.timings.startup:.1f} s" if result.cold_start else "warm"
        table.add_row(
            DEMO_PROMPTS[index][:20],
            (result.worker_id or "-")[:8],
            start,
            f"{result.timings.generating:.1f} s",
            _short_path(result.path),
        )
        files += len(written)
    console.print(table)
    console.print(f"{files} PNG files written to {args.out}/")
    return 2 if unwritten else 0


def trace_to_out(args: argparse.Namespace) -> None:
    """Without ``--trace-file``, trace into a fresh ``OUT/trace.jsonl`` (this run only).

    An ``--out`` that cannot be written is refused first (exit 2, nothing started).
    """
    check_out(args.out)
    if args.trace_file is None:
        args.trace_file = args.out / "trace.jsonl"
        args.trace_file.parent.mkdir(parents=True, exist_ok=True)
        args.trace_file.unlink(missing_ok=True)  # the demo's report shows this run only


def write_demo_report(args: argparse.Namespace) -> None:
    """The demo leaves its lifecycle report beside its trace file."""
    if args.trace_file is None or not args.trace_file.is_file():
        return
    from observability import write_report

    output = args.out / "report.html"
    summary = write_report(args.trace_file, output)
    console.print(
        f"trace: {escape(str(args.trace_file))} · lifecycle report: {escape(str(output))} "
        f"({summary.gpu_seconds_attributed:.0f} GPU-s, ${summary.cost_usd:.4f})"
    )


def _run(args: argparse.Namespace) -> int:
    return anyio.run(released_on_sigterm, demo, args)


DEMO = Command(
    "demo", _declare, _run, before_telemetry=trace_to_out, after_telemetry=write_demo_report
)
"""``swarmpod demo``."""

"""``swarmpod report TRACE_FILE``: the self-contained HTML lifecycle report of a trace file."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape

from ..errors import SettingsError
from ._command import Command, Subparsers
from ._console import console

__all__ = ["REPORT"]


def _declare(commands: Subparsers, traced: argparse.ArgumentParser) -> None:
    report = commands.add_parser(
        "report",
        help="a self-contained HTML lifecycle report from a trace file",
        description="Timeline of workers and generations by phase, cold-start histogram, "
        "cost split per user and model, the slowest generations.",
    )
    report.add_argument("trace_file", type=Path, metavar="TRACE_FILE", help="a --trace-file")
    report.add_argument(
        "-o", "--output", type=Path, default=Path("report.html"), help="default report.html"
    )


def _run(args: argparse.Namespace) -> int:
    from observability import write_report

    if not args.trace_file.is_file():
        raise SettingsError("TRACE_FILE", f"no such file: {args.trace_file}", source="command line")
    summary = write_report(args.trace_file, args.output)
    console.print(
        f"{summary.generations} generation(s), {summary.workers} worker(s), "
        f"{summary.gpu_seconds_attributed:.0f} GPU-s (${summary.cost_usd:.4f}) → "
        f"{escape(str(args.output))}"
    )
    return 0


REPORT = Command("report", _declare, _run)
"""``swarmpod report``."""

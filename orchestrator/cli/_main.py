"""The ``swarmpod`` entry point: parse, configure logging and telemetry, run one command."""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import sys
from collections.abc import Sequence
from typing import Final

from rich.markup import escape

from observability import Telemetry, configure_logging

from .._extras import MissingExtraError
from ..errors import OrchestratorError
from ._command import Command
from ._console import console
from ._demo import DEMO
from ._emulator import EMULATOR
from ._generate import GENERATE
from ._replay import REPLAY
from ._report import REPORT
from ._serve import SERVE
from ._tracing import configure_telemetry, tracing_flags
from ._users import USERS

__all__ = ["COMMANDS", "build_parser", "main", "start_telemetry"]

COMMANDS: Final[tuple[Command, ...]] = (GENERATE, DEMO, REPLAY, REPORT, SERVE, USERS, EMULATOR)
"""Every command, in the order ``swarmpod --help`` lists them."""
_BY_NAME: Final = {command.name: command for command in COMMANDS}
_ECHOED_LOGGERS: Final = (
    "swarmpod.engine",
    "swarmpod.workers",
    "swarmpod.swarmui",
    "swarmpod.runpod",
)
"""Loggers whose warnings retell a failure the command prints itself (shown with ``-v``)."""


def version() -> str:
    """swarmpod's installed version (``unknown`` when run from a tree that is not installed)."""
    try:
        return importlib.metadata.version("swarmpod")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time, so log lines go through a progress
    display (rich redirects stderr above its bars while one is live) instead of breaking it."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_cli_logging(verbose: int) -> None:
    """Warnings by default, ``-v`` info, ``-vv`` debug; the engine's own account of a failure
    only with ``-v``: the command prints the failure once, itself."""
    level = logging.WARNING - 10 * min(verbose, 2)
    handler = configure_logging(level, stream=_CurrentStderr())  # type: ignore[arg-type]
    if not verbose:
        handler.addFilter(_no_echo)


def _no_echo(record: logging.LogRecord) -> bool:
    """Drop what the engine logs below ERROR about a failure the command reports itself."""
    return record.levelno >= logging.ERROR or not record.name.startswith(_ECHOED_LOGGERS)


def build_parser() -> argparse.ArgumentParser:
    """The ``swarmpod`` argument parser: global flags and one sub-parser per command."""
    parser = argparse.ArgumentParser(
        prog="swarmpod",
        description="SwarmUI generations on RunPod serverless workers, woken only when needed.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    parser.add_argument("--version", action="version", version=f"swarmpod {version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    traced = tracing_flags()
    for command in COMMANDS:
        command.declare(commands, traced)
    return parser


def start_telemetry(args: argparse.Namespace) -> Telemetry | None:
    """The process's telemetry for the parsed command (None for commands without tracing)."""
    _BY_NAME[args.command].before_telemetry(args)
    return configure_telemetry(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``swarmpod`` console script; returns the exit status.

    An :class:`OrchestratorError` (or a missing extra) prints as one line and exits 2; Ctrl-C
    exits 130.
    """
    args = build_parser().parse_args(argv)
    configure_cli_logging(args.verbose)
    command = _BY_NAME[args.command]
    telemetry: Telemetry | None = None
    try:
        telemetry = start_telemetry(args)
        return command.run(args)
    except OrchestratorError as exc:
        phase = f", phase {exc.phase}" if exc.phase else ""
        console.print(
            f"[red]error[/] ({type(exc).__name__}{phase}): {escape(str(exc))}", soft_wrap=True
        )
        return 2
    except MissingExtraError as exc:  # e.g. serve with a DatabaseUrl, without psycopg
        console.print(f"[red]error[/]: {escape(str(exc))}", soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        if telemetry is not None:
            telemetry.shutdown()  # flush: the last spans are written, not lost
            command.after_telemetry(args)

"""What a ``swarmpod`` command is: how it declares its arguments and how it runs."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

__all__ = ["Command", "Subparsers"]

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""What ``ArgumentParser.add_subparsers`` returns."""


def _nothing(args: argparse.Namespace) -> None:
    return None


@dataclass(frozen=True)
class Command:
    """One ``swarmpod`` command.

    Attributes:
        name: the command word.
        declare: adds the command's parser to the subparsers; given the parent parser of the
            tracing flags (``--trace-file``, ``--otlp``, ``--console-spans``) to take or leave.
        run: runs the parsed command to its exit status (it starts its own event loop).
        before_telemetry: adjusts the arguments before telemetry is configured from them.
        after_telemetry: runs once the spans are flushed (also after a failure).
    """

    name: str
    declare: Callable[[Subparsers, argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    before_telemetry: Callable[[argparse.Namespace], None] = _nothing
    after_telemetry: Callable[[argparse.Namespace], None] = _nothing

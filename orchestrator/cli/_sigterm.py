"""SIGTERM ends a command the way Ctrl-C does: every worker it holds is released first."""

from __future__ import annotations

import argparse
import signal
from collections.abc import Awaitable, Callable

import anyio

from ..errors import OrchestratorError
from ._console import console

__all__ = ["released_on_sigterm"]


async def released_on_sigterm(
    command: Callable[[argparse.Namespace], Awaitable[int]], args: argparse.Namespace
) -> int:
    """Run ``command``; SIGTERM cancels it, so every worker it holds is released first."""
    status = 143
    failure: OrchestratorError | None = None
    async with anyio.create_task_group() as tasks:

        async def run() -> None:
            nonlocal status, failure
            try:
                status = await command(args)
            except OrchestratorError as exc:  # raised below, not wrapped in an ExceptionGroup
                failure = exc
            tasks.cancel_scope.cancel()

        async def on_sigterm() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM) as signals:
                async for _ in signals:
                    console.print("[yellow]SIGTERM: releasing every worker, then exiting[/]")
                    tasks.cancel_scope.cancel()
                    return

        tasks.start_soon(run)
        tasks.start_soon(on_sigterm)
    if failure is not None:
        raise failure
    return status

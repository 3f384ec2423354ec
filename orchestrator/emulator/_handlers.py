"""The built-in worker images: which in-process handler runs a job, and what it may touch.

Two images are built in (specs/worker-protocols.md): ``v1`` (HartsyAI wakeup/keepalive,
:mod:`._v1_handler`) and ``v2`` (leases behind a bearer-token gateway, :mod:`._v2_handler`).

A built-in handler is ``async def handler(context) -> value``; the value maps to the job result
as runpod-python maps a handler's return value (runpod-api.md §6.4). A streaming handler calls
``context.stream(output)`` for each ``yield`` a generator handler would make.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

from ._handler_context import HandlerContext
from ._v1_handler import handle_v1
from ._v2_handler import handle_v2

__all__ = ["BuiltinHandler", "HandlerContext", "builtin_handler"]


BuiltinHandler = Callable[[HandlerContext], Awaitable[Any]]
"""An in-process handler of a built-in worker image."""


async def _v1(context: HandlerContext) -> Any:
    return await handle_v1(context.worker, context.input)


def builtin_handler(protocol: Literal["v1", "v2"]) -> BuiltinHandler:
    """The handler of the built-in worker image speaking ``protocol``."""
    if protocol == "v1":
        return _v1
    if protocol == "v2":
        return handle_v2
    raise ValueError(f"no built-in worker image speaks {protocol!r}")

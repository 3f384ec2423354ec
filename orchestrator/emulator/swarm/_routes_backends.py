"""Backend routes: ``ListBackends``, ``FreeBackendMemory`` (specs/swarmui-api.md §5.3)."""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from ._args import arg_bool
from ._pipeline import Handler
from ._state import Session, SwarmState

__all__ = ["BACKEND_ROUTES"]


async def _list_backends(
    state: SwarmState, session: Session | None, body: dict[str, Any], request: web.Request
) -> dict[str, Any]:
    arg_bool(body, "nonreal", False)
    full_data = arg_bool(body, "full_data", False)
    return state.backends(full_data=full_data)


async def _free_backend_memory(
    state: SwarmState, session: Session | None, body: dict[str, Any], request: web.Request
) -> dict[str, Any]:
    arg_bool(body, "system_ram", False)
    return {"result": True, "count": 1}


BACKEND_ROUTES: Final[dict[str, Handler]] = {
    "listbackends": _list_backends,
    "freebackendmemory": _free_backend_memory,
}
"""The backend routes by lower-case name."""

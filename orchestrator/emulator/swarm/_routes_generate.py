"""Generation over HTTP: ``GenerateText2Image`` (specs/swarmui-api.md §3.1).

The WebSocket twin, ``GenerateText2ImageWS``, is :mod:`._websocket`.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from ._args import RouteError
from ._engine import GenerationFailed, run_generation
from ._pipeline import Handler, abort_callback
from ._state import BACKEND_IDS, Session, SwarmState
from ._t2i import parse_t2i

__all__ = ["GENERATE_ROUTES"]


async def _generate_http(
    state: SwarmState, session: Session | None, body: dict[str, Any], request: web.Request
) -> Any:
    assert session is not None
    t2i = parse_t2i(body, state.catalog, BACKEND_IDS, state.permitted)
    abort = abort_callback(request)
    state.live_connections[id(request)] = abort
    try:
        outputs = await run_generation(
            state, state.new_generation(session), t2i, abort_connection=abort
        )
    except GenerationFailed as failure:
        raise RouteError(failure.text) from None
    finally:
        state.live_connections.pop(id(request), None)
    return {"images": [entry for _, entry in outputs or []]}


GENERATE_ROUTES: Final[dict[str, Handler]] = {"generatetext2image": _generate_http}
"""The HTTP generation route by lower-case name."""

"""Generation over a WebSocket (``GenerateText2ImageWS``, specs/swarmui-api.md §3.2).

The first text message is the request. Progress, status and images stream back; after the
last image the server says ``socket_intention: close`` and lingers: a further request on the
same socket runs too (its batch indices go on after the previous ones), else the final status
closes the exchange. Keep-alives go out every 30 s. Refusals are sent as one JSON message.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any, Final

import aiohttp
import anyio
import anyio.lowlevel
from aiohttp import web

from ._args import RouteError
from ._engine import Emit, GenerationFailed, run_generation
from ._pipeline import (
    MAX_BODY,
    WS_ROUTES,
    PipelineError,
    abort_callback,
    basic_error,
    check_permission,
    latency,
    session_for,
)
from ._state import BACKEND_IDS, Session, SwarmState
from ._t2i import parse_t2i

__all__ = ["serve_websocket"]

_WS_FIRST_MESSAGE_S: Final = 60.0
_WS_LINGER_S: Final = 2.0
_KEEP_ALIVE_S: Final = 30.0
_CLOSE_TIMEOUT_S: Final = 5.0


async def serve_websocket(
    state: SwarmState, http_routes: Collection[str], request: web.Request, route: str
) -> web.WebSocketResponse:
    """Answer one WebSocket API call (``http_routes``: the routes served over HTTP only)."""
    ws = web.WebSocketResponse(max_msg_size=MAX_BODY)
    await ws.prepare(request)
    state.live_connections[id(request)] = abort_callback(request)
    try:
        body: Any = None
        with anyio.move_on_after(_WS_FIRST_MESSAGE_S):
            message = await ws.receive()
            if message.type is aiohttp.WSMsgType.TEXT:
                body = json.loads(message.data)
        if not isinstance(body, dict):
            return ws
        await latency(state, route)
        try:
            session = session_for(state, route, body, request.headers)
            if route not in http_routes and route not in WS_ROUTES:
                raise basic_error("Unknown API route.", "bad_route")
            if route not in WS_ROUTES:
                raise basic_error(
                    "API route needs HTTP, request is websocket", "bad_request_method"
                )
            assert session is not None
            check_permission(state, route)
            await _generate(state, ws, session, body, request, route)
        except PipelineError as refusal:
            await ws.send_json(refusal.body)
    except ValueError:
        await ws.send_json({"error_id": "internal_error", "error": "An internal error occurred"})
    finally:
        state.live_connections.pop(id(request), None)
        with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_TIMEOUT_S):
            await ws.close()
    return ws


async def _generate(
    state: SwarmState,
    ws: web.WebSocketResponse,
    session: Session,
    body: dict[str, Any],
    request: web.Request,
    route: str,
) -> None:
    send_lock = anyio.Lock()

    sender, receiver = anyio.create_memory_object_stream[dict[str, Any]](16)
    async with sender, receiver, anyio.create_task_group() as tasks:

        async def emit(message: dict[str, Any]) -> None:
            async with send_lock:
                try:
                    if "image" in message and state.faults.take(f"truncated_json:{route}"):
                        text = json.dumps(message)
                        await ws.send_str(text[: len(text) // 2])
                    else:
                        await ws.send_json(message)
                except ConnectionResetError:  # the client left: nobody to generate for
                    tasks.cancel_scope.cancel()
                    await anyio.lowlevel.checkpoint()

        async def read_client() -> None:
            async for message in ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    try:
                        data = json.loads(message.data)
                    except ValueError:
                        continue
                    if isinstance(data, dict):
                        await sender.send(data)
            tasks.cancel_scope.cancel()

        async def keep_alive() -> None:
            while True:
                await anyio.sleep(_KEEP_ALIVE_S)
                await emit({"keep_alive": True})

        tasks.start_soon(read_client)
        tasks.start_soon(keep_alive)
        offset = 0
        while True:
            produced = await _one_request(state, emit, session, body, offset, request)
            if produced is None:
                break
            offset += produced
            await emit({"keep_alive": True})
            await emit({"discard_indices": []})
            await emit({"socket_intention": "close"})
            with anyio.move_on_after(_WS_LINGER_S):
                body = await receiver.receive()
                continue
            await emit(state.status_object(session))
            break
        tasks.cancel_scope.cancel()


async def _one_request(
    state: SwarmState,
    emit: Emit,
    session: Session,
    body: dict[str, Any],
    offset: int,
    request: web.Request,
) -> int | None:
    """Run one request on the socket; return how many batch indices it used, None on error."""
    try:
        t2i = parse_t2i(body, state.catalog, BACKEND_IDS, state.permitted)
        outputs = await run_generation(
            state,
            state.new_generation(session),
            t2i,
            emit=emit,
            abort_connection=abort_callback(request),
            batch_offset=offset,
        )
    except RouteError as error:
        await emit(error.body())
        return None
    except GenerationFailed as failure:
        await emit({"error": failure.text})
        return None
    if outputs is None:
        await emit({"error": "Generation session interrupted."})
        return None
    return t2i.images

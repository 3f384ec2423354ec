"""The request pipeline: authentication, SwarmUI's checks in SwarmUI's order, then the route.

Order (specs/swarmui-api.md §1): the ``Authorization: Bearer <token>`` of a swarmpod user
(401 without one: SwarmUI's server-wide header layer, §2.4) → method and body → session (every
route but ``GetNewSession``; the seed's ``/API/RunPod/<name>`` routes take one if given) →
route lookup → WebSocket-vs-HTTP → permissions → the handler. Every refusal is SwarmUI's
envelope; an unexpected error is logged and answered ``internal_error``, never a traceback.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

import anyio
from aiohttp import WSMsgType, web

from observability import Telemetry, request_span

from ..accounts import Accounts, User
from ..models import ModelRegistry
from ._backends import Backend
from ._envelope import ApiRefusalError, bad_request, ok, parse_json_object, read_body
from ._sessions import Session, SessionStore

__all__ = ["Call", "Route", "Served", "handle_api", "unauthorized"]

log = logging.getLogger("swarmpod.service")

_FIRST_MESSAGE_S: Final = 60.0
_BAD_PERMISSIONS: Final = "You lack permissions for this route."


class Served(Protocol):
    """What the API pipeline and its routes read of the running service."""

    @property
    def backends(self) -> list[Backend]:
        """The endpoints served, one orchestrator each."""

    @property
    def sessions(self) -> SessionStore:
        """The SwarmUI sessions handed out."""

    @property
    def accounts(self) -> Accounts:
        """Users, roles, tokens and RunPod keys."""

    @property
    def registry(self) -> ModelRegistry:
        """The persisted model catalogs."""

    @property
    def telemetry(self) -> Telemetry:
        """Where the request spans go."""

    @property
    def server_id(self) -> str:
        """This process's id, as SwarmUI's ``GetServerInfo`` gives it."""

    @property
    def version(self) -> str:
        """The version the API reports."""

    async def authenticate(self, authorization: str | None) -> User | None:
        """The user an ``Authorization: Bearer`` header names, if any."""

    async def reload_catalogs(self) -> None:
        """Read every backend's stored catalog again."""

    def next_request_id(self) -> int:
        """A new request id for WebSocket messages."""


@dataclass
class Call:
    """One authenticated API call, as a route handler sees it.

    Attributes:
        service: the running service.
        user: the swarmpod user who calls.
        session: the SwarmUI session it carries (None only for session-less routes).
        body: the JSON object sent (HTTP body, or the first WebSocket message).
        ws: the WebSocket of a ``...WS`` route, else None.
    """

    service: Served
    user: User
    session: Session | None
    body: dict[str, Any]
    ws: web.WebSocketResponse | None = None


Handler = Callable[[Call], Awaitable[Mapping[str, Any] | None]]


@dataclass(frozen=True)
class Route:
    """One API route.

    Attributes:
        handler: answers the call (a WebSocket handler sends its own messages, returns None).
        permissions: every permission the user needs.
        websocket: a ``...WS`` route.
        session: the route needs a session (``GetNewSession`` does not; seed routes: optional).
        get: GET is accepted too (the seed's ``/API/RunPod/<name>`` routes).
    """

    handler: Handler
    permissions: tuple[str, ...] = ()
    websocket: bool = False
    session: bool | None = True
    get: bool = False


async def handle_api(
    request: web.Request, service: Served, routes: Mapping[str, Route]
) -> web.StreamResponse:
    """Run one request through the pipeline, inside a server span.

    The span continues the caller's trace when the request carries a W3C ``traceparent``
    header, and the generations it starts are its children: one request, one trace.
    """
    with request_span(service.telemetry, request.method, request.path, request.headers) as span:
        response = await _handle_api(request, service, routes)
        span.answered(response.status)
        return response


async def _handle_api(
    request: web.Request, service: Served, routes: Mapping[str, Route]
) -> web.StreamResponse:
    name = request.match_info.get("route", "").lower()
    websocket = request.headers.get("Upgrade", "").lower() == "websocket"
    user = await service.authenticate(request.headers.get("Authorization"))
    if user is None:
        return unauthorized().response()
    if websocket:
        return await _websocket(request, service, routes, name, user)
    route = routes.get(name)
    try:
        if request.method != "POST" and not (route is not None and route.get):
            raise bad_request("API routes are POST only (with a JSON body)", "bad_request_method")
        body = {} if request.method == "GET" else await read_body(request)
        session = _session_of(request, body, service, user, route)
        if route is None:
            raise bad_request("Unknown API route", "bad_route")
        if route.websocket:
            raise bad_request("API route needs websocket, request is HTTP", "bad_request_method")
        _check_permissions(user, route)
        answer = await route.handler(Call(service, user, session, body))
    except ApiRefusalError as refused:
        return refused.response()
    except Exception:
        log.exception("[RunPodServerless] internal error in /API/%s", name)
        return bad_request("An internal error occurred", "internal_error").response()
    if answer is None:
        return bad_request("API call did not return any output", "no_result").response()
    return ok(answer)


async def _websocket(
    request: web.Request,
    service: Served,
    routes: Mapping[str, Route],
    name: str,
    user: User,
) -> web.StreamResponse:
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=16 * 1024 * 1024)
    await ws.prepare(request)
    try:
        body = await _first_message(ws)
        route = routes.get(name)
        session = _session_of(request, body, service, user, route)
        if route is None:
            raise ApiRefusalError(200, "Unknown API route.", "bad_route")
        if not route.websocket:
            raise ApiRefusalError(
                200, "API route needs HTTP, request is websocket", "bad_request_method"
            )
        _check_permissions(user, route)
        await route.handler(Call(service, user, session, body, ws))
    except ApiRefusalError as refused:
        await _send_quietly(ws, refused.body)
    except Exception:
        log.exception("[RunPodServerless] internal error in WS /API/%s", name)
        await _send_quietly(
            ws, {"error": "An internal error occurred", "error_id": "internal_error"}
        )
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            await ws.close()
    return ws


async def _first_message(ws: web.WebSocketResponse) -> dict[str, Any]:
    with anyio.move_on_after(_FIRST_MESSAGE_S):
        message = await ws.receive()
        if message.type is not WSMsgType.TEXT:
            raise ApiRefusalError(200, "Expected one JSON text message as the request", "basic_api")
        return parse_json_object(message.data, "Request message")
    raise ApiRefusalError(200, "No request message within a minute", "basic_api")


def unauthorized() -> ApiRefusalError:
    """The answer to a request without a valid token, on every path (SwarmUI's server-wide
    ``Authorization`` layer, §2.4)."""
    return ApiRefusalError(
        401,
        "Unauthorized: send 'Authorization: Bearer <swarmpod token>' (swarmpod users "
        "--config <this serve's config> token NAME issues one).",
        "unauthorized",
    )


def _session_of(
    request: web.Request,
    body: Mapping[str, Any],
    service: Served,
    user: User,
    route: Route | None,
) -> Session | None:
    if route is not None and route.session is False:
        return None
    session_id = body.get("session_id") or request.headers.get("X-Session-ID")
    if not session_id:
        if route is not None and route.session is None:
            return None  # the seed's routes: a token is enough
        raise bad_request("missing session id")
    session = service.sessions.get(str(session_id), user.name)
    if session is None:
        raise ApiRefusalError(
            401, "Invalid session ID. You may need to refresh the page.", "invalid_session_id"
        )
    return session


def _check_permissions(user: User, route: Route) -> None:
    if not all(user.has(permission) for permission in route.permissions):
        raise bad_request(_BAD_PERMISSIONS, "bad_permissions")


async def _send_quietly(ws: web.WebSocketResponse, body: Mapping[str, Any]) -> None:
    if not ws.closed:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_json(dict(body))

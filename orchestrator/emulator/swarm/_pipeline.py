"""SwarmUI's API pipeline in the fake: the checks every API call passes, in SwarmUI's order.

Follows specs/swarmui-api.md §1 and §1.1: the ``Authorization`` header (static, or the v2
worker gateway's bearer token, §2), then for ``POST /API/{route}`` the content type and length,
the JSON body, the session (``missing session id``, ``invalid_session_id``), the route
(``bad_route``), the route's permission (``bad_permissions``), and the handler, whose
:class:`RouteError` becomes a 200 with ``error``. The WebSocket side (:mod:`._websocket`)
shares the session and permission checks.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import anyio
from aiohttp import web

from ._args import RouteError
from ._auth import ROUTE_PERMISSIONS, token_user
from ._config import SwarmConfig
from ._gateway import Gateway
from ._state import Session, SwarmState

__all__ = [
    "WS_ROUTES",
    "Handler",
    "PipelineError",
    "abort_callback",
    "authorization_middleware",
    "basic_error",
    "check_permission",
    "json_response",
    "latency",
    "login_user",
    "serve_http",
    "session_for",
]

MAX_BODY: Final = 200 * 1024 * 1024
"""The largest request body (and WebSocket message) accepted."""
WS_ROUTES: Final = frozenset({"generatetext2imagews"})
"""Routes served only over a WebSocket."""
_SESSIONLESS: Final = frozenset({"login", "getnewsession", "registerbasic", "registeroauth"})
_INVALID_SESSION: Final = {
    "error": "Invalid session ID. You may need to refresh the page.",
    "error_id": "invalid_session_id",
}
_BAD_PERMISSIONS: Final = {
    "error_id": "bad_permissions",
    "error": "You lack permissions for this route.",
}
_LOCALHOST: Final = frozenset({"127.0.0.1", "::1"})

Handler = Callable[[SwarmState, Session | None, dict[str, Any], web.Request], Awaitable[Any]]
"""An API route's handler: ``(state, session, body, request) -> answer`` (None session only on
sessionless routes); it refuses with :class:`RouteError`."""


class PipelineError(Exception):
    """A refusal by the API pipeline before the route handler runs (§1.1)."""

    def __init__(self, status: int, body: dict[str, str]) -> None:
        super().__init__(body.get("error"))
        self.status = status
        self.body = body


def json_response(body: Any, status: int = 200) -> web.Response:
    """A JSON answer as SwarmUI sends it (never cached)."""
    return web.json_response(body, status=status, headers={"Cache-Control": "no-store"})


def basic_error(error: str, error_id: str = "basic_api") -> PipelineError:
    """A 400 refusal with SwarmUI's ``error_id``."""
    return PipelineError(400, {"error_id": error_id, "error": error})


def abort_callback(request: web.Request) -> Callable[[], None]:
    """A callable that drops ``request``'s connection (a worker dying mid-request)."""

    def abort() -> None:
        if request.transport is not None:
            request.transport.abort()

    return abort


def authorization_middleware(config: SwarmConfig, gateway: Gateway) -> Any:
    """The ``Authorization`` check in front of every path: the gateway's, else the static one."""
    required = config.required_authorization
    bypass = frozenset(config.auth_bypass_ips)

    @web.middleware
    async def authorize(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        header = request.headers.get("Authorization")
        if gateway.state != "off":
            admitted = gateway.admits(header)
        else:
            admitted = required is None or header == required or request.remote in bypass
        if not admitted:
            return web.Response(status=401, text="Unauthorized")
        return await handler(request)

    return authorize


async def latency(state: SwarmState, route: str) -> None:
    """Wait the scripted latency of ``route``, if one is due."""
    if state.faults.take(f"latency:{route}"):
        await anyio.sleep(state.faults.latency_s.get(route, 0.0))


def check_permission(state: SwarmState, route: str) -> None:
    """Refuse with ``bad_permissions`` when the server's role lacks the route's permission."""
    permission = ROUTE_PERMISSIONS.get(route)
    if permission is not None and not state.permitted(permission):
        raise PipelineError(400, dict(_BAD_PERMISSIONS))


def login_user(state: SwarmState, request: web.Request) -> str | None:
    """The user a request logs in as (§2.4), or None when accounts refuse it."""
    config = state.config
    if not config.accounts_required:
        return request.headers.get("X-SWARM-USER_ID") or "local"
    token = request.cookies.get("swarm_token")
    if token is not None and token in state.auth_tokens:
        user = token_user(token)
        if user is not None:
            return user
    local = request.remote in _LOCALHOST and "X-Forwarded-For" not in request.headers
    if config.allow_localhost_bypass and local:
        return "local"
    return None


def session_for(
    state: SwarmState, route: str, body: dict[str, Any], headers: Any
) -> Session | None:
    """The session a call names (None on sessionless routes), or the refusal."""
    if route in _SESSIONLESS:
        return None
    session_id = body.get("session_id") or headers.get("X-Session-ID")
    if not session_id:
        raise basic_error("missing session id")
    session = state.sessions.get(str(session_id))
    if session is None or state.faults.take("invalid_session"):
        raise PipelineError(401, dict(_INVALID_SESSION))
    return session


async def serve_http(
    state: SwarmState, routes: Mapping[str, Handler], request: web.Request, route: str
) -> web.StreamResponse:
    """Answer one HTTP API call through the pipeline."""
    if request.method != "POST":
        return web.Response(status=302, headers={"Location": "/Error/NoGetAPI"})
    await latency(state, route)
    try:
        body = await _read_body(request)
        session = session_for(state, route, body, request.headers)
        handler = routes.get(route)
        if handler is None and route not in WS_ROUTES:
            raise basic_error("Unknown API route", "bad_route")
        if handler is None:
            raise basic_error("API route needs websocket, request is HTTP", "bad_request_method")
        if session is not None:
            check_permission(state, route)
        result = await handler(state, session, body, request)
    except PipelineError as refusal:
        return json_response(refusal.body, refusal.status)
    except RouteError as error:
        return json_response(error.body())
    if isinstance(result, web.StreamResponse):
        return result
    if state.faults.take(f"truncated_json:{route}"):
        text = json.dumps(result)
        return web.Response(
            text=text[: len(text) // 2],
            content_type="application/json",
            headers={"Cache-Control": "no-store"},
        )
    return json_response(result)


async def _read_body(request: web.Request) -> dict[str, Any]:
    if "json" not in request.content_type:
        raise basic_error("Wrong content type")
    length = request.content_length
    if length is None or length <= 0 or length >= MAX_BODY:
        raise basic_error("bad content length")
    try:
        body = json.loads(await request.read())
    except ValueError:
        raise basic_error("An internal error occurred", "internal_error") from None
    if body is None:
        raise basic_error("null input")
    if not isinstance(body, dict):
        raise basic_error("An internal error occurred", "internal_error")
    return body

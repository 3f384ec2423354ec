"""The fake SwarmUI server: SwarmUI's API pipeline and routes over a real aiohttp server.

Follows specs/swarmui-api.md: the pipeline and error envelopes (§1, §1.1), sessions, accounts and
the Authorization header (§2), the generate routes (§3), models, backends and status (§5), route
permissions and API keys (§7), and the RunPod extension's routes (§8, when configured).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

import aiohttp
import anyio
from aiohttp import web

from ._args import RouteError, arg_bool, arg_int, arg_str
from ._auth import ROUTE_PERMISSIONS, has_permission, make_token, token_user
from ._config import SwarmConfig, SwarmFaults
from ._engine import Emit, GenerationFailed, run_generation
from ._gateway import Gateway, GatewayState
from ._state import BackendState, Generation, Session, SwarmState
from ._t2i import param_list, parse_t2i

__all__ = ["FakeSwarmUI"]

logger = logging.getLogger("swarmpod.emulator.swarm")

_MAX_BODY: Final = 200 * 1024 * 1024
_SESSIONLESS: Final = frozenset({"login", "getnewsession", "registerbasic", "registeroauth"})
_WS_ROUTES: Final = frozenset({"generatetext2imagews"})
_INVALID_SESSION: Final = {
    "error": "Invalid session ID. You may need to refresh the page.",
    "error_id": "invalid_session_id",
}
_BACKEND_IDS: Final = ["0"]
_WS_FIRST_MESSAGE_S: Final = 60.0
_WS_LINGER_S: Final = 2.0
_KEEP_ALIVE_S: Final = 30.0
_CLOSE_TIMEOUT_S: Final = 5.0
_VERSION: Final = "0.9.7.0.GIT-swarmpod"
_BAD_PERMISSIONS: Final = {
    "error_id": "bad_permissions",
    "error": "You lack permissions for this route.",
}
# What C# prints for the HashSet<string> in SetAPIKey's error (§7: not the offending key).
_KEY_TYPES_TO_STRING: Final = "System.Collections.Generic.HashSet`1[System.String]"
_LOCALHOST: Final = frozenset({"127.0.0.1", "::1"})
_RUNPOD_BACKEND_ID: Final = 1

Handler = Callable[[Session | None, dict[str, Any], web.Request], Awaitable[Any]]


class _PipelineError(Exception):
    """A refusal by the API pipeline before the route handler runs (§1.1)."""

    def __init__(self, status: int, body: dict[str, str]) -> None:
        super().__init__(body.get("error"))
        self.status = status
        self.body = body


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, headers={"Cache-Control": "no-store"})


def _basic(error: str, error_id: str = "basic_api") -> _PipelineError:
    return _PipelineError(400, {"error_id": error_id, "error": error})


def _abort(request: web.Request) -> Callable[[], None]:
    def abort() -> None:
        if request.transport is not None:
            request.transport.abort()

    return abort


class FakeSwarmUI:
    """A SwarmUI server for tests and the emulator: real HTTP + WebSocket, real PNGs.

    >>> async def example() -> None:  # doctest: +SKIP
    ...     fake = FakeSwarmUI(SwarmConfig(seconds_per_step=0.01))
    ...     url = await fake.start()          # "http://127.0.0.1:PORT"
    ...     fake.faults.invalid_session()     # script a worker restart
    ...     await fake.stop()

    All waiting uses the event loop's clock, so it runs in virtual time under looptime.

    Args:
        config: models, timings, auth (Authorization header, role, accounts) and extensions.
        faults: a fault script, possibly shared with other fakes (default: a fresh one).
        worker_id: the emulated RunPod worker this SwarmUI belongs to (shown in backend titles).

    Attributes:
        app: the aiohttp application (mountable elsewhere).
        base_url: ``http://host:port`` while serving, else None.
        faults: the fault script.
    """

    def __init__(
        self,
        config: SwarmConfig = SwarmConfig(),  # noqa: B008 - frozen value object
        *,
        faults: SwarmFaults | None = None,
        worker_id: str = "local",
    ) -> None:
        self.config = config
        self.faults = faults if faults is not None else SwarmFaults()
        self.worker_id = worker_id
        self.base_url: str | None = None
        self._state = SwarmState(config, self.faults, worker_id)
        self._runner: web.AppRunner | None = None
        self._live_requests: dict[int, web.Request] = {}
        self._gateway = Gateway()
        self._routes: dict[str, Handler] = {
            "getnewsession": self._get_new_session,
            "getcurrentstatus": self._get_current_status,
            "interruptall": self._interrupt_all,
            "listmodels": self._list_models,
            "describemodel": self._describe_model,
            "listloadedmodels": self._list_loaded_models,
            "selectmodel": self._select_model,
            "listbackends": self._list_backends,
            "freebackendmemory": self._free_backend_memory,
            "triggerrefresh": self._trigger_refresh,
            "listt2iparams": self._trigger_refresh,
            "generatetext2image": self._generate_http,
            "setapikey": self._set_api_key,
            "getapikeystatus": self._get_api_key_status,
        }
        if config.runpod_extension:
            self._routes["getstatus"] = self._runpod_get_status
            self._routes["refreshmodels"] = self._runpod_refresh_models
        self.app = web.Application(middlewares=[self._authorization_middleware()])
        self.app.router.add_route("*", "/API/{route}", self._api)
        self.app.router.add_get("/View/{path:.+}", self._view)

    def __repr__(self) -> str:
        return f"FakeSwarmUI(worker_id={self.worker_id!r}, base_url={self.base_url!r})"

    # -- lifecycle and test hooks -------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0 = any free port); return ``http://host:PORT``."""
        if self._runner is not None:
            raise RuntimeError("FakeSwarmUI is already serving")
        runner = web.AppRunner(
            self.app, handler_cancellation=True, shutdown_timeout=1.0, access_log=None
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        bound_port = runner.addresses[0][1]
        self._state.started_at = anyio.current_time()
        self.base_url = f"http://{host}:{bound_port}"
        logger.debug("fake SwarmUI %s serving at %s", self.worker_id, self.base_url)
        return self.base_url

    async def stop(self) -> None:
        """Stop serving and drop in-flight generations' connections (a worker that died)."""
        for request in list(self._live_requests.values()):
            _abort(request)()
        runner, self._runner = self._runner, None
        if runner is not None:
            with anyio.CancelScope(shield=True):
                await runner.cleanup()
        self.base_url = None

    def create_session(self) -> str:
        """Create a session without HTTP (what a v1 worker's handler does at start)."""
        return self._state.new_session().id

    def invalidate_sessions(self) -> None:
        """Forget every session, as a restarted worker does (old ids get invalid_session_id)."""
        self._state.sessions.clear()

    def create_auth_token(self, user_id: str = "local") -> str:
        """Issue a ``swarm_token`` login cookie value for ``user_id`` (what ``CreateAuthToken``
        or ``Login`` gives a SwarmUI user); send it as ``Cookie: swarm_token=<token>``."""
        token = make_token(user_id)
        self._state.auth_tokens.add(token)
        return token

    def revoke_auth_tokens(self) -> None:
        """Revoke every login token (existing sessions keep working, as in SwarmUI)."""
        self._state.auth_tokens.clear()

    def set_runpod_backend_status(self, status: str) -> None:
        """Set the RunPod extension backend's status (``RUNNING``, ``LOADING``, ``ERRORED``,
        ``DISABLED``, ...); only ``RUNNING`` backends are reported and refreshed (§8)."""
        self._state.runpod_status = status.upper()

    def set_backend_state(self, state: BackendState | None) -> None:
        """Force the backend's state (``running``, ``loading``, ``idle``, ``errored``,
        ``disabled``, ``none``); None returns to the configured start-up behaviour."""
        self._state.backend_override = state

    @property
    def current_model(self) -> str | None:
        """The model the backend has loaded (None before the first load)."""
        return self._state.current_model

    @property
    def generations_started(self) -> int:
        """Generation requests (HTTP or WS) that started."""
        return self._state.generations_started

    @property
    def generations_finished(self) -> int:
        """Generation requests that ended, whatever the outcome (error, interrupt, abort)."""
        return self._state.generations_finished

    @property
    def live_generations(self) -> int:
        """Generation requests in flight now."""
        return len(self._state.in_flight)

    @property
    def model_loads_started(self) -> int:
        """Model loads that started (``SelectModel`` calls and loads a generation needed)."""
        return self._state.model_loads_started

    @property
    def busy(self) -> bool:
        """Whether a generation or a model load is in flight now."""
        return bool(self._state.in_flight) or self._state.model_loads_in_flight > 0

    async def wait_for_activity(self) -> None:
        """Wait until a generation or a model load next starts or ends."""
        await self._state.wait_for_activity()

    @property
    def last_activity_at(self) -> float | None:
        """Loop time (``anyio.current_time()``) when the last generation or model load ended.

        Only generations and model loads move it; plain requests (status polls, listings, new
        sessions) never do, so a worker's idleness can be measured from it.
        """
        return self._state.last_activity_at

    # -- the v2 worker gateway ------------------------------------------------------------------

    @property
    def gateway(self) -> GatewayState:
        """The v2 worker gateway: ``off`` (none), ``open`` (a token admitted) or ``closed``."""
        return self._gateway.state

    def set_gateway_token(self, token: str | None) -> None:
        """Put the v2 worker gateway in front of this SwarmUI, admitting ``token`` only.

        From now on every request (API routes, WebSocket upgrades, ``/View``, unknown paths)
        needs ``Authorization: Bearer <token>``, else 401 ``Unauthorized``. None closes the
        gateway: every request is refused, so a revoked lease token no longer opens anything.
        Connections already open are not cut. While a gateway is on, it replaces
        ``SwarmConfig.required_authorization`` and ignores ``auth_bypass_ips`` (it stands in
        front of SwarmUI, where every client is remote). The token is never logged.
        """
        self._gateway.set_token(token)
        logger.debug(
            "fake SwarmUI %s gateway %s",
            self.worker_id,
            "token set (<redacted>)" if token is not None else "closed",
        )

    def remove_gateway(self) -> None:
        """Take the gateway away: only ``required_authorization`` (if set) is checked again."""
        self._gateway.remove()

    @property
    def server_id(self) -> str:
        """The per-instance GUID ``GetNewSession`` reports."""
        return self._state.server_id

    # -- pipeline -------------------------------------------------------------------------------

    def _authorization_middleware(self) -> Any:
        required = self.config.required_authorization
        bypass = frozenset(self.config.auth_bypass_ips)
        gateway = self._gateway

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

    async def _latency(self, route: str) -> None:
        if self.faults.take(f"latency:{route}"):
            await anyio.sleep(self.faults.latency_s.get(route, 0.0))

    def _check_permission(self, route: str) -> None:
        permission = ROUTE_PERMISSIONS.get(route)
        if permission is not None and not has_permission(self._state.permissions, permission):
            raise _PipelineError(400, dict(_BAD_PERMISSIONS))

    def _permitted(self, permission: str) -> bool:
        return has_permission(self._state.permissions, permission)

    def _login_user(self, request: web.Request) -> str | None:
        """The user a request logs in as (§2.4), or None when accounts refuse it."""
        if not self.config.accounts_required:
            return request.headers.get("X-SWARM-USER_ID") or "local"
        token = request.cookies.get("swarm_token")
        if token is not None and token in self._state.auth_tokens:
            user = token_user(token)
            if user is not None:
                return user
        local = request.remote in _LOCALHOST and "X-Forwarded-For" not in request.headers
        if self.config.allow_localhost_bypass and local:
            return "local"
        return None

    def _session_for(self, route: str, body: dict[str, Any], headers: Any) -> Session | None:
        if route in _SESSIONLESS:
            return None
        session_id = body.get("session_id") or headers.get("X-Session-ID")
        if not session_id:
            raise _basic("missing session id")
        session = self._state.sessions.get(str(session_id))
        if session is None or self.faults.take("invalid_session"):
            raise _PipelineError(401, dict(_INVALID_SESSION))
        return session

    async def _api(self, request: web.Request) -> web.StreamResponse:
        route = request.match_info["route"].lower()
        if request.method == "GET" and request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request, route)
        if request.method != "POST":
            return web.Response(status=302, headers={"Location": "/Error/NoGetAPI"})
        await self._latency(route)
        try:
            body = await self._read_body(request)
            session = self._session_for(route, body, request.headers)
            handler = self._routes.get(route)
            if handler is None and route not in _WS_ROUTES:
                raise _basic("Unknown API route", "bad_route")
            if handler is None:
                raise _basic("API route needs websocket, request is HTTP", "bad_request_method")
            if session is not None:
                self._check_permission(route)
            result = await handler(session, body, request)
        except _PipelineError as refusal:
            return _json(refusal.body, refusal.status)
        except RouteError as error:
            return _json(error.body())
        if isinstance(result, web.StreamResponse):
            return result
        if self.faults.take(f"truncated_json:{route}"):
            text = json.dumps(result)
            return web.Response(
                text=text[: len(text) // 2],
                content_type="application/json",
                headers={"Cache-Control": "no-store"},
            )
        return _json(result)

    async def _read_body(self, request: web.Request) -> dict[str, Any]:
        if "json" not in request.content_type:
            raise _basic("Wrong content type")
        length = request.content_length
        if length is None or length <= 0 or length >= _MAX_BODY:
            raise _basic("bad content length")
        try:
            body = json.loads(await request.read())
        except ValueError:
            raise _basic("An internal error occurred", "internal_error") from None
        if body is None:
            raise _basic("null input")
        if not isinstance(body, dict):
            raise _basic("An internal error occurred", "internal_error")
        return body

    # -- WebSocket ------------------------------------------------------------------------------

    async def _websocket(self, request: web.Request, route: str) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=_MAX_BODY)
        await ws.prepare(request)
        self._live_requests[id(request)] = request
        try:
            body: Any = None
            with anyio.move_on_after(_WS_FIRST_MESSAGE_S):
                message = await ws.receive()
                if message.type is aiohttp.WSMsgType.TEXT:
                    body = json.loads(message.data)
            if not isinstance(body, dict):
                return ws
            await self._latency(route)
            try:
                session = self._session_for(route, body, request.headers)
                if route not in self._routes and route not in _WS_ROUTES:
                    raise _basic("Unknown API route.", "bad_route")
                if route not in _WS_ROUTES:
                    raise _basic("API route needs HTTP, request is websocket", "bad_request_method")
                assert session is not None
                self._check_permission(route)
                await self._ws_generate(ws, session, body, request, route)
            except _PipelineError as refusal:
                await ws.send_json(refusal.body)
        except ValueError:
            await ws.send_json(
                {"error_id": "internal_error", "error": "An internal error occurred"}
            )
        finally:
            self._live_requests.pop(id(request), None)
            with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_TIMEOUT_S):
                await ws.close()
        return ws

    async def _ws_generate(
        self,
        ws: web.WebSocketResponse,
        session: Session,
        body: dict[str, Any],
        request: web.Request,
        route: str,
    ) -> None:
        send_lock = anyio.Lock()

        async def emit(message: dict[str, Any]) -> None:
            async with send_lock:
                if "image" in message and self.faults.take(f"truncated_json:{route}"):
                    text = json.dumps(message)
                    await ws.send_str(text[: len(text) // 2])
                else:
                    await ws.send_json(message)

        sender, receiver = anyio.create_memory_object_stream[dict[str, Any]](16)
        async with sender, receiver, anyio.create_task_group() as tasks:

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
                produced = await self._ws_one_request(emit, session, body, offset, request)
                if produced is None:
                    break
                offset += produced
                await emit({"keep_alive": True})
                await emit({"discard_indices": []})
                await emit({"socket_intention": "close"})
                with anyio.move_on_after(_WS_LINGER_S):
                    body = await receiver.receive()
                    continue
                await emit(self._state.status_object(session))
                break
            tasks.cancel_scope.cancel()

    async def _ws_one_request(
        self,
        emit: Emit,
        session: Session,
        body: dict[str, Any],
        offset: int,
        request: web.Request,
    ) -> int | None:
        """Run one request on the socket; return how many batch indices it used, None on error."""
        try:
            t2i = parse_t2i(body, self._state.catalog, _BACKEND_IDS, self._permitted)
            outputs = await run_generation(
                self._state,
                self._new_generation(session),
                t2i,
                emit=emit,
                abort_connection=_abort(request),
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

    def _new_generation(self, session: Session) -> Generation:
        self._state.request_counter += 1
        return Generation(session, self._state.request_counter)

    # -- routes ---------------------------------------------------------------------------------

    async def _get_new_session(
        self, _: Session | None, body: dict[str, Any], request: web.Request
    ) -> dict[str, Any]:
        user_id = self._login_user(request)
        if user_id is None:
            return {"error": "Invalid or unauthorized."}
        if body.get("impersonateUser"):
            raise RouteError(
                "You do not have permission to impersonate other users.", "bad_impersonate"
            )
        session = self._state.new_session(user_id)
        return {
            "session_id": session.id,
            "user_id": session.user_id,
            "output_append_user": True,
            "version": _VERSION,
            "server_id": self._state.server_id,
            "permissions": list(self._state.permissions),
        }

    async def _get_current_status(
        self, session: Session | None, body: dict[str, Any], request: web.Request
    ) -> dict[str, Any]:
        return self._state.status_object(session)

    async def _interrupt_all(
        self, session: Session | None, body: dict[str, Any], request: web.Request
    ) -> dict[str, Any]:
        assert session is not None
        others = arg_bool(body, "other_sessions", False)
        for generation in list(self._state.in_flight):
            mine = generation.session is session
            if mine or (others and generation.session.user_id == session.user_id):
                generation.interrupt()
        return {"success": True}

    async def _list_models(
        self, session: Session | None, body: dict[str, Any], request: web.Request
    ) -> dict[str, Any]:
        path = arg_str(body, "path")
        depth = arg_int(body, "depth")
        subtype = arg_str(body, "subtype", "Stable-Diffusion")
        sort_by = arg_str(body, "sortBy", "Name")
        arg_bool(body, "allowRemote", True)
        sort_reverse = arg_bool(body, "sortReverse", False)
        data_images = arg_bool(body, "dataImages", False)
        return self._state.catalog.listing(
            path=path,
            depth=depth,
            subtype=subtype,
            sort_by=sort_by,
            sort_reverse=sort_reverse,
            data_images=data_images,
            loaded=self._state.current_model,
        )

    async def _describe_model(
        self, session: Session | None, body: dict[str, Any], request: web.Request
    ) -> dict[str, Any]:
        name = arg_str(body, "modelName")
        subtype = arg_str(body, "subtype", "Stable-Diffusion")
        catalog = self._state.catalog
        model = catalog.find_exact(name, subtype)
        if model is None:
            raise RouteError("Model not found.")
        loaded = model.name == self._state.current_model
        return {"model": catalog.model_object(model, loaded=loaded, data_images=False)}

    async def _list_loaded_models(
        self, session: Session | None, body: dict[str, Any], request: web.Request
    ) -> dict[str, Any]:
        catalog = self._state.catalog
        current = self._state.current_model
        model = catalog.find_exact(current) if current else None
        loaded = (
            [] if model is None else [catalog.model_object(model, loaded=True, data_images=False)]
        )
        return {"models": loaded}

    async def _select_model(
        self, session: Session | None, body: dict[str, Any], request: web.Request
    ) -> dict[str, Any]:
        assert session is not None
        name = arg_str(body, "model")
        backend_id = arg_str(body, "backendId", "")
        model = self._state.catalog.find_exact(name)
        if model is None or backend_id not in ("", *_BACKEND_IDS):
            raise RouteError("Model not found.")
        state = self._state
        session.loading_models += 1
        state.model_loads_started += 1
        state.model_loads_in_flight += 1
        state.notify_activity()
        try:
            async with state.model_lock:
                await anyio.sleep(self.config.model_load_s)
                if self.faults.take("model_load_failure"):
                    raise RouteError("Model failed to load.")
                state.current_model = model.name
        finally:
            session.loading_models -= 1
            state.model_loads_in_flight -= 1
            state.last_activity_at = anyio.current_time()
            state.notify_activity()
        return {"success": True}

    async def _list_backends(
        self, session: Session | None, body: dict[str, Any], request: web.Request
    ) -> dict[str, Any]:
        arg_bool(body, "nonreal", False)
        full_data = arg_bool(body, "full_data", False)
        return self._state.backends(full_data=full_data)

    async def _free_backend_memory(
        self, session: Session | None, body: dict[str, Any], request: web.Request
    ) -> dict[str, Any]:
        arg_bool(body, "system_ram", False)
        return {"result": True, "count": 1}

    async def _trigger_refresh(
        self, session: Session | None, body: dict[str, Any], request: web.Request
    ) -> dict[str, Any]:
        arg_bool(body, "strong", True)
        catalog = self._state.catalog
        models = {
            subtype: [model.name for model in catalog.of(subtype)]
            for subtype in ("Stable-Diffusion", "VAE", "LoRA")
        }
        return {
            "list": param_list(),
            "groups": [],
            "models": models,
            "model_compat_classes": {},
            "model_classes": {},
            "wildcards": [],
            "param_edits": None,
        }

    async def _set_api_key(
        self, session: Session | None, body: dict[str, Any], request: web.Request
    ) -> dict[str, Any]:
        assert session is not None
        key_type = arg_str(body, "keyType")
        key = arg_str(body, "key")
        accepted = set(self.config.api_key_types)
        if self.config.runpod_extension:
            accepted.add("runpod_api")
        if key_type not in accepted:
            raise RouteError(f"Invalid key type '{_KEY_TYPES_TO_STRING}'.")
        slot = (session.user_id, key_type)
        if key == "none":
            self._state.api_keys.pop(slot, None)
        else:
            self._state.api_keys[slot] = (key, f"{self._state.now():%Y-%m-%d %H:%M}")
        return {"success": True}

    async def _get_api_key_status(
        self, session: Session | None, body: dict[str, Any], request: web.Request
    ) -> dict[str, Any]:
        assert session is not None
        key_type = arg_str(body, "keyType")
        stored = self._state.api_keys.get((session.user_id, key_type))
        return {"status": "not set" if stored is None else f"last updated {stored[1]}"}

    def _runpod_running(self) -> bool:
        return self._state.runpod_status == "RUNNING"

    async def _runpod_get_status(
        self, session: Session | None, body: dict[str, Any], request: web.Request
    ) -> dict[str, Any]:
        backends = []
        if self._runpod_running():
            backends.append(
                {
                    "id": _RUNPOD_BACKEND_ID,
                    "title": f"RunPod Serverless ({self.config.runpod_endpoint_id})",
                    "status": "RUNNING",
                    "endpoint_id": self.config.runpod_endpoint_id,
                    "model_count": len(self.config.models),
                    "auto_refresh": False,
                    "max_concurrent": 10,
                }
            )
        return {"success": True, "total_backends": len(backends), "backends": backends}

    async def _runpod_refresh_models(
        self, session: Session | None, body: dict[str, Any], request: web.Request
    ) -> dict[str, Any]:
        assert session is not None
        if not self._runpod_running():
            return {"success": False, "error": "No RunPod backends are currently running"}
        # The extension refreshes with the caller's own runpod_api key; without one it fails.
        failed = 0 if (session.user_id, "runpod_api") in self._state.api_keys else 1
        refreshed = 1 - failed
        return {
            "success": True,
            "refreshed": refreshed,
            "failed": failed,
            "message": f"Refreshed {refreshed} RunPod backend(s), {failed} failed.",
        }

    async def _generate_http(
        self, session: Session | None, body: dict[str, Any], request: web.Request
    ) -> Any:
        assert session is not None
        t2i = parse_t2i(body, self._state.catalog, _BACKEND_IDS, self._permitted)
        self._live_requests[id(request)] = request
        try:
            outputs = await run_generation(
                self._state,
                self._new_generation(session),
                t2i,
                abort_connection=_abort(request),
            )
        except GenerationFailed as failure:
            raise RouteError(failure.text) from None
        finally:
            self._live_requests.pop(id(request), None)
        return {"images": [entry for _, entry in outputs or []]}

    # -- outputs --------------------------------------------------------------------------------

    async def _view(self, request: web.Request) -> web.StreamResponse:
        await self._latency("view")
        path = "View/" + request.match_info["path"]
        owner = request.match_info["path"].split("/", 1)[0]
        viewer = self._view_user(request)
        if owner != viewer and not self._permitted("view_others_outputs"):
            return _json(
                {
                    "error": "unauthorized - you may not view other users' outputs",
                    "error_id": "unauthorized",
                },
                400,
            )
        data = self._state.outputs.get(path)
        if data is None:
            return _json({"error": "404, file not found.", "error_id": "file_not_found"}, 404)
        return web.Response(body=data, content_type="image/png")

    def _view_user(self, request: web.Request) -> str:
        """Who fetches a ``/View`` path: the logged-in user (§2.4), else ``local``."""
        return self._login_user(request) or "local"

"""The fake SwarmUI server: SwarmUI's API pipeline and routes over a real aiohttp server.

Follows specs/swarmui-api.md. This module puts the fake together and holds its lifecycle and
test hooks; the parts, each one job, share one :class:`~._state.SwarmState`:

- :mod:`._pipeline`: the checks every API call passes (§1, §1.1, §2), the HTTP side;
- :mod:`._websocket`: generation over a WebSocket (§3.2);
- the route groups: :mod:`._routes_session` (§2.1, §3.3, §3.4), :mod:`._routes_generate`
  (§3.1), :mod:`._routes_models` (§5.1, §5.2), :mod:`._routes_backends` (§5.3),
  :mod:`._routes_keys` (§7) and :mod:`._routes_runpod` (the RunPod extension, §8);
- :mod:`._view`: generated outputs under ``/View``;
- :mod:`._pages`: ``GET /`` (a redirect, as health checks expect) and the UI page.
"""

from __future__ import annotations

import logging
from typing import Final

import anyio
from aiohttp import web

from ._auth import make_token
from ._config import SwarmConfig, SwarmFaults
from ._gateway import Gateway, GatewayState
from ._pages import serve_generate_page, serve_root
from ._pipeline import Handler, authorization_middleware, serve_http
from ._routes_backends import BACKEND_ROUTES
from ._routes_generate import GENERATE_ROUTES
from ._routes_keys import KEY_ROUTES
from ._routes_models import MODEL_ROUTES
from ._routes_runpod import RUNPOD_ROUTES
from ._routes_session import SESSION_ROUTES
from ._state import BackendState, SwarmState
from ._view import serve_view
from ._websocket import serve_websocket

__all__ = ["FakeSwarmUI"]

logger = logging.getLogger("swarmpod.emulator.swarm")

_ROUTES: Final[dict[str, Handler]] = {
    **SESSION_ROUTES,
    **MODEL_ROUTES,
    **BACKEND_ROUTES,
    **GENERATE_ROUTES,
    **KEY_ROUTES,
}


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
        self._gateway = Gateway()
        self._routes = dict(_ROUTES)
        if config.runpod_extension:
            self._routes.update(RUNPOD_ROUTES)
        self.app = web.Application(middlewares=[authorization_middleware(config, self._gateway)])
        self.app.router.add_route("*", "/API/{route}", self._api)
        self.app.router.add_get("/View/{path:.+}", self._view)
        self.app.router.add_get("/", serve_root)
        self.app.router.add_get("/Text2Image", serve_generate_page)

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
        for abort in list(self._state.live_connections.values()):
            abort()
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

    # -- serving ---------------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.StreamResponse:
        route = request.match_info["route"].lower()
        if request.method == "GET" and request.headers.get("Upgrade", "").lower() == "websocket":
            return await serve_websocket(self._state, self._routes.keys(), request, route)
        return await serve_http(self._state, self._routes, request, route)

    async def _view(self, request: web.Request) -> web.StreamResponse:
        return await serve_view(self._state, request)

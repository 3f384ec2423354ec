"""The running service: accounts, models, one orchestrator per backend, the HTTP server."""

from __future__ import annotations

import contextlib
import importlib.metadata
import itertools
import logging
import os
import uuid
from collections.abc import Mapping
from types import TracebackType
from typing import Self

import aiohttp
import anyio
import anyio.abc
from aiohttp import web

from observability import Telemetry

from .._orchestrator import Orchestrator
from ..accounts import Accounts, User
from ..errors import OrchestratorError
from ..models import ModelRegistry
from ..store import StateStore, opened_store
from ._backends import Backend
from ._config import ServiceConfig
from ._envelope import ApiRefusalError
from ._http import ServiceRunner
from ._pipeline import handle_api, unauthorized
from ._routes import ROUTES, SEED_ROUTES
from ._sessions import SessionStore

__all__ = ["SwarmpodService"]

log = logging.getLogger("swarmpod.service")


def _version() -> str:
    try:
        return importlib.metadata.version("swarmpod")
    except importlib.metadata.PackageNotFoundError:
        return "dev"


class SwarmpodService:
    """``swarmpod serve``: the seed's routes and a SwarmUI-compatible API over the engine.

    >>> async def main(config: ServiceConfig) -> None:                   # doctest: +SKIP
    ...     async with SwarmpodService(config) as service:
    ...         print("listening on", service.url)
    ...         await anyio.sleep_forever()

    On entry it opens the accounts (refusing a wrong master key), the model registry and one
    orchestrator per backend, cancels the leases a crashed run left open (with the backend
    keys and every key users stored), starts model discovery for backends with
    ``AutoRefresh`` and a backend key, then listens. On exit it stops listening and releases
    every worker.

    Args:
        config: what to serve.
        session: the HTTP session the orchestrators use (tests route proxy URLs with it).
        env: the environment for the master key (default ``os.environ``).
        telemetry: where spans and metrics go (default: the process's, ``Telemetry.default``).
    """

    def __init__(
        self,
        config: ServiceConfig,
        *,
        session: aiohttp.ClientSession | None = None,
        env: Mapping[str, str] | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.config = config
        self.telemetry = telemetry or Telemetry.default()
        self.sessions = SessionStore()
        self.server_id = str(uuid.uuid4())
        self.version = f"swarmpod-{_version()}"
        self.backends: list[Backend] = []
        self._session = session
        self._env = os.environ if env is None else env
        self._accounts: Accounts | None = None
        self._registry: ModelRegistry | None = None
        self._store: StateStore | None = None
        self._stack = contextlib.AsyncExitStack()
        self._runner: ServiceRunner | None = None
        self._requests = itertools.count(1)
        self.url = ""

    def __repr__(self) -> str:
        return f"SwarmpodService(url={self.url!r}, backends={[b.name for b in self.backends]})"

    @property
    def accounts(self) -> Accounts:
        """The accounts (users, roles, tokens, keys)."""
        assert self._accounts is not None, "use 'async with SwarmpodService(...)'"
        return self._accounts

    @property
    def registry(self) -> ModelRegistry:
        """The persisted model catalogs."""
        assert self._registry is not None, "use 'async with SwarmpodService(...)'"
        return self._registry

    @property
    def evicted(self) -> anyio.Event | None:
        """Set if another replica declared this one dead (PostgreSQL): its workers are the
        other's now, and it must stop; None on SQLite."""
        evicted = getattr(self._store, "evicted", None)
        return evicted if isinstance(evicted, anyio.Event) else None

    @property
    def store_description(self) -> str:
        """Which store it uses (``PostgreSQL postgresql://user@host/db`` or the SQLite files'
        folder), never a password."""
        return self.config.store_description

    async def authenticate(self, authorization: str | None) -> User | None:
        """The user whose token the ``Authorization: Bearer`` header carries, if any."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        return await self.accounts.authenticate(authorization.removeprefix("Bearer ").strip())

    def next_request_id(self) -> int:
        """A new request id for WebSocket messages."""
        return next(self._requests)

    async def reload_catalogs(self) -> None:
        """Read every backend's stored catalog again."""
        for backend in self.backends:
            backend.catalog = await self.registry.load(backend.endpoint_id) or backend.catalog

    async def __aenter__(self) -> Self:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()  # each orchestrator releases its workers shielded

    async def _start(self) -> None:
        state = self.config.state_dir
        state.mkdir(parents=True, exist_ok=True)
        if self.config.database is not None:  # one database for everything, shared
            self._store = await self._stack.enter_async_context(
                opened_store(
                    self.config.database,
                    state / "swarmpod.sqlite3",
                    heartbeat_s=self.config.replica_heartbeat_s,
                )
            )
        self._accounts = await Accounts.open(
            self._store or state / "accounts.sqlite3", env=self._env
        )
        self._stack.push_async_callback(self._accounts.close)
        self._registry = await ModelRegistry.open(self._store or state / "models.sqlite3")
        self._stack.push_async_callback(self._registry.close)
        for index, (name, settings) in enumerate(self.config.backends.items()):
            orch = Orchestrator(
                settings,
                keys=self._accounts,
                session=self._session,
                telemetry=self.telemetry,
                store=self._store,
            )
            await self._stack.enter_async_context(orch)
            backend = Backend(index, name, settings, orch)
            backend.catalog = await self._registry.load(backend.endpoint_id)
            self.backends.append(backend)
        await self._recover_with_users_keys()
        tasks = await self._stack.enter_async_context(anyio.create_task_group())
        self._stack.callback(tasks.cancel_scope.cancel)
        for backend in self.backends:
            if backend.settings.auto_refresh and backend.settings.runpod_api_key:
                backend.discovery_due = True  # ListBackends says loading until it ends
                tasks.start_soon(self._auto_refresh, backend)
        self._runner = ServiceRunner(self.app(), handler_cancellation=True)
        await self._runner.setup()
        self._stack.push_async_callback(self._runner.cleanup)
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        log.info("[RunPodServerless] swarmpod serves %s", self.url)

    async def _recover_with_users_keys(self) -> None:
        """Cancel the leases a crashed run left open with users' own keys.

        Each orchestrator recovered the leases of its backend key on entry. One pass over a
        journal covers every endpoint in it (backends share the state file unless their
        StateFile differs); the leases of live processes (a CLI run sharing the file) are
        left alone.
        """
        keys = await self.accounts.stored_runpod_keys()
        if not keys:
            return
        one_per_journal: dict[str | None, Backend] = {}
        for backend in self.backends:
            shared = self._store is not None  # one journal for every backend
            one_per_journal.setdefault(None if shared else backend.settings.state_file, backend)
        for backend in one_per_journal.values():
            await backend.orch.recover(keys)

    async def _auto_refresh(self, backend: Backend) -> None:
        try:
            await backend.refresh(self.registry, user=None)
        except OrchestratorError as exc:
            log.warning("[RunPodServerless] AutoRefresh of %s failed: %s", backend.name, exc)
        finally:
            backend.discovery_due = False

    def app(self) -> web.Application:
        """The aiohttp application."""

        async def seed(request: web.Request) -> web.StreamResponse:
            return await handle_api(request, self, SEED_ROUTES)

        async def api(request: web.Request) -> web.StreamResponse:
            return await handle_api(request, self, ROUTES)

        async def elsewhere(request: web.Request) -> web.StreamResponse:
            if await self.authenticate(request.headers.get("Authorization")) is None:
                return unauthorized().response()
            return ApiRefusalError(
                404, "Unknown route: swarmpod serves /API/<route>", "bad_route"
            ).response()

        app = web.Application()
        app.router.add_route("*", "/API/RunPod/{route}", seed)
        app.router.add_route("*", "/API/{route}", api)
        app.router.add_route("*", "/api/{route}", api)
        app.router.add_route("*", "/{tail:.*}", elsewhere)
        return app

"""The emulator: one local HTTP server plus the endpoints (and their workers) behind it."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from types import TracebackType

import aiohttp
import anyio
from aiohttp import web
from yarl import URL

from ._config import EmulatorConfig
from ._endpoint import EmulatedEndpoint
from ._proxy_routing import proxied_worker_id, route_to
from ._server import build_app

__all__ = ["Emulator"]

_log = logging.getLogger("swarmpod.emulator")
_SHUTDOWN_GRACE_S = 5.0


class Emulator:
    """RunPod serverless endpoints on a real local port, in the current event loop.

    >>> async def main() -> None:  # doctest: +SKIP
    ...     async with Emulator() as emulator:
    ...         client = RunPodClient(session, "local-ep", Secret("test-key"),
    ...                               base_url=emulator.base_url)

    Workers, fake SwarmUIs and timers run in a task group owned by the emulator, on the loop
    clock (so looptime makes a 120 s cold start instant). ``start()`` and ``stop()`` must be
    called from the same task, like entering and leaving ``async with``.
    """

    def __init__(self, config: EmulatorConfig = EmulatorConfig()) -> None:  # noqa: B008
        self.config = config
        self._endpoints = {
            endpoint_id: EmulatedEndpoint(endpoint_id, endpoint_config)
            for endpoint_id, endpoint_config in config.endpoints.items()
        }
        self._stack: AsyncExitStack | None = None
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v2``, the base for RunPodClient and the runpod SDK."""
        if self._base_url is None:
            raise RuntimeError("the emulator is not running; use 'async with Emulator()'")
        return self._base_url

    def endpoint(self, endpoint_id: str) -> EmulatedEndpoint:
        """The emulated endpoint ``endpoint_id`` (KeyError if it is not configured)."""
        return self._endpoints[endpoint_id]

    def local_url_of(self, public_url: str) -> str | None:
        """The local URL of the worker behind ``public_url`` (None if no worker is).

        Either the URL a worker reports, or its RunPod proxy URL
        (``https://{worker_id}-7801.proxy.runpod.net``), which a hosted handler may build
        itself from ``RUNPOD_POD_ID``.
        """
        worker_id = proxied_worker_id(URL(public_url))
        for endpoint in self._endpoints.values():
            for worker in endpoint.workers:
                if worker.public_url == public_url.rstrip("/") or worker.id == worker_id:
                    return worker.local_url
        return None

    def proxy_middleware(self) -> aiohttp.ClientMiddlewareType:
        """An aiohttp client middleware that routes worker proxy URLs to the local workers.

        Workers report RunPod-style ``https://{worker}-7801.proxy.runpod.net`` URLs with
        ``EndpointConfig(proxy_urls=True)`` (a hosted handler may build one itself); a
        session created with ``aiohttp.ClientSession(middlewares=(emulator.proxy_middleware(),))``
        reaches them (HTTP and WebSocket), keeping the proxy host in the ``Host`` header. Any
        other URL, and a proxy URL of no worker, goes out unchanged. For an emulator in
        another process, see :class:`EmulatorProxyRouting`.
        """

        async def route(
            request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
        ) -> aiohttp.ClientResponse:
            if proxied_worker_id(request.url) is not None:
                local = self.local_url_of(str(request.url.origin()))
                if local is not None:
                    route_to(request, local)
            return await handler(request)

        return route

    async def start(self) -> None:
        """Listen, then start each endpoint's scaler (and so its min workers)."""
        if self._stack is not None:
            raise RuntimeError("the emulator is already running")
        async with AsyncExitStack() as stack:
            task_group = await stack.enter_async_context(anyio.create_task_group())
            app = build_app(self._endpoints, self.config.api_keys)
            runner = web.AppRunner(
                app,
                handler_cancellation=True,
                access_log=None,
                shutdown_timeout=_SHUTDOWN_GRACE_S,
            )
            await runner.setup()
            stack.push_async_callback(runner.cleanup)
            site = web.TCPSite(runner, self.config.host, self.config.port)
            await site.start()
            host, port = runner.addresses[0][:2]
            self._base_url = f"http://{host}:{port}/v2"
            self._runner = runner
            for endpoint in self._endpoints.values():
                endpoint.open(task_group, base_url=self._base_url)
            _log.info("[Emulator] listening on %s", self._base_url)
            self._stack = stack.pop_all()

    async def stop(self) -> None:
        """Stop every worker (and its fake SwarmUI), then the server; wait for every task."""
        stack, self._stack = self._stack, None
        if stack is None:
            return
        for endpoint in self._endpoints.values():
            endpoint.close()
        self._runner = None
        self._base_url = None
        await stack.aclose()  # the server first, then the task group (LIFO)
        _log.info("[Emulator] stopped")

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

"""A slow network between swarmpod and the emulated RunPod API: a real HTTP proxy on loopback.

Each request is forwarded to the emulator at once; its answer is held back before it reaches
the client, as on a slow link. A client that gives up meanwhile loses an answer the server
already produced (a ``/stream`` chunk is read once; a ``/run`` created its job anyway).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
import anyio
from aiohttp import web

_HOP_BY_HOP = frozenset({"host", "content-length", "transfer-encoding", "connection"})


@dataclass
class SlowProxy:
    """The proxy's address and what it did.

    Attributes:
        base_url: the RunPod base URL to give swarmpod (``http://127.0.0.1:PORT/v2``).
        delay_for: seconds an answer on a route (``run``, ``stream``...) is held back.
        lost: answers produced upstream that never reached the client, by route.
    """

    base_url: str
    delay_for: Callable[[str], float]
    lost: dict[str, int] = field(default_factory=dict)


def _route_of(path: str) -> str:
    parts = path.strip("/").split("/")  # v2 / endpoint / route [/ job]
    return parts[2] if len(parts) > 2 else ""


@asynccontextmanager
async def slow_proxy(upstream: str, delay_for: Callable[[str], float]) -> AsyncIterator[SlowProxy]:
    """Serve a proxy to ``upstream`` (the emulator's base URL) holding answers back."""
    origin = upstream.removesuffix("/v2")
    proxy = SlowProxy(base_url="", delay_for=delay_for)

    async def forward(request: web.Request) -> web.Response:
        route = _route_of(request.path)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        body = await request.read()
        async with session.request(
            request.method, origin + request.path_qs, headers=headers, data=body
        ) as answer:
            payload = await answer.read()
            status, content_type = answer.status, answer.content_type
            kept = {k: v for k, v in answer.headers.items() if k.lower() == "retry-after"}
        try:
            await anyio.sleep(proxy.delay_for(route))
        except BaseException:
            proxy.lost[route] = proxy.lost.get(route, 0) + 1
            raise
        return web.Response(body=payload, status=status, content_type=content_type, headers=kept)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host, port = runner.addresses[0][:2]
            proxy.base_url = f"http://{host}:{port}/v2"
            yield proxy
        finally:
            await runner.cleanup()

"""Routing RunPod proxy URLs to emulated workers, in this process or in another one.

A worker's SwarmUI is published by RunPod at ``https://{worker_id}-7801.proxy.runpod.net``; a
worker image reports that URL (the HartsyAI handler builds it from ``RUNPOD_POD_ID``, whatever
runs it). Under the emulator the SwarmUI listens on ``127.0.0.1`` instead. An aiohttp *client*
middleware puts the request (HTTP or WebSocket) on the worker's local address; the proxy host
stays in the ``Host`` header. :meth:`Emulator.proxy_middleware` does it for an emulator in this
process; :class:`EmulatorProxyRouting` asks an emulator running elsewhere (``swarmpod emulator``)
through its emulator-only route ``GET /v2/{endpoint}/_emulator/workers``.
"""

from __future__ import annotations

import re
from typing import Any, Final

import aiohttp
from yarl import URL

from ..secrets import Secret
from ._worker import PROXY_DOMAIN

__all__ = ["EmulatorProxyRouting", "proxied_worker_id", "route_to"]

_PROXY_HOST: Final = re.compile(rf"^([a-z0-9]+)-(\d+)\.{re.escape(PROXY_DOMAIN)}$")


def proxied_worker_id(url: URL) -> str | None:
    """The worker id of a RunPod proxy URL (``https://abc-7801.proxy.runpod.net`` → ``abc``).

    >>> proxied_worker_id(URL("wss://4fcf93a9fc9040-7801.proxy.runpod.net/API/X"))
    '4fcf93a9fc9040'
    >>> proxied_worker_id(URL("https://api.runpod.ai/v2")) is None
    True
    """
    match = _PROXY_HOST.match(url.host or "")
    return match.group(1) if match else None


def route_to(request: aiohttp.ClientRequest, local_url: str) -> None:
    """Send ``request`` to the worker listening at ``local_url`` (``http://127.0.0.1:PORT``)."""
    target = URL(local_url)
    scheme = "ws" if request.url.scheme in ("ws", "wss") else "http"
    request.url = (
        request.url.with_scheme(scheme).with_host(target.host or "127.0.0.1").with_port(target.port)
    )


class EmulatorProxyRouting:
    """A client middleware for an emulator running in another process (``swarmpod emulator``).

    >>> async def main() -> None:  # doctest: +SKIP
    ...     routing = EmulatorProxyRouting("http://127.0.0.1:8000/v2", "local-ep", Secret("k"))
    ...     async with aiohttp.ClientSession(middlewares=(routing,)) as session:
    ...         ...  # an Orchestrator(settings, session=session) reaches proxy-URL workers

    Each proxy host is looked up once (the emulator's ``_emulator/workers`` route, with the
    API key); a URL of no worker the emulator knows goes out unchanged.
    """

    def __init__(self, base_url: str, endpoint_id: str, api_key: Secret) -> None:
        self._workers_url = f"{base_url.rstrip('/')}/{endpoint_id}/_emulator/workers"
        self._api_key = api_key
        self._local: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"EmulatorProxyRouting({self._workers_url!r})"

    async def __call__(
        self, request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        worker_id = proxied_worker_id(request.url)
        if worker_id is not None:
            local = self._local.get(worker_id) or await self._look_up(worker_id)
            if local is not None:
                route_to(request, local)
        return await handler(request)

    async def _look_up(self, worker_id: str) -> str | None:
        headers = {"Authorization": f"Bearer {self._api_key.reveal()}"}
        timeout = aiohttp.ClientTimeout(total=10)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(self._workers_url, headers=headers) as answer,
        ):
            answer.raise_for_status()
            body: dict[str, Any] = await answer.json()
        for worker in body.get("workers", []):
            if worker.get("local_url"):
                self._local[str(worker["id"])] = str(worker["local_url"])
        return self._local.get(worker_id)

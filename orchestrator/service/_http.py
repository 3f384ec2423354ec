"""The service's aiohttp server, hardened where aiohttp answers on its own.

aiohttp answers a request it cannot parse (a bad header, a bad request line) before any route
or middleware runs: with a text page that quotes the offending bytes (an ``Authorization``
header and its token included), and a log line with a traceback that quotes them too. And it
names its version in every ``Server`` header. Here such requests get SwarmUI's envelope
(``basic_api``, 400) and a one-line log without the bytes, and ``Server`` says ``swarmpod``.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_server import Server

from ._envelope import ok

__all__ = ["SERVER_NAME", "ServiceRunner"]

log = logging.getLogger("swarmpod.service")

SERVER_NAME: Final = "swarmpod"
"""The ``Server`` header of every answer (no version: nothing to look up exploits by)."""


class _QuietRequestHandler(RequestHandler):
    """aiohttp's connection handler, with SwarmUI's envelopes for the errors it answers."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status < 500:
            log.info(
                "[RunPodServerless] refused a bad HTTP request from %s (%s)",
                request.remote,
                type(exc).__name__ if exc is not None else status,
            )
            body = {"error_id": "basic_api", "error": "Bad HTTP request"}
        else:
            log.error(  # a bug of the service itself: keep its traceback
                "[RunPodServerless] the HTTP server failed a request from %s (%s)",
                request.remote,
                type(exc).__name__ if exc is not None else status,
                exc_info=exc,
            )
            body = {"error_id": "internal_error", "error": "An internal error occurred"}
        response = ok(body, status=status)
        response.headers["Server"] = SERVER_NAME
        response.force_close()
        return response


class _QuietServer(Server):
    def __call__(self) -> RequestHandler:
        return _QuietRequestHandler(self, loop=self._loop, **self._kwargs)


class ServiceRunner(web.AppRunner):
    """An ``AppRunner`` whose connections answer unparseable requests with an envelope, and
    whose every answer says ``Server: swarmpod``."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        app.on_response_prepare.append(_name_the_server)
        super().__init__(app, **kwargs)

    async def _make_server(self) -> Server:
        server = await super()._make_server()
        server.__class__ = _QuietServer  # the same server; its connections get our handler
        return server


async def _name_the_server(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = SERVER_NAME

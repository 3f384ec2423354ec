"""The UI side of SwarmUI, as far as a client sees it: ``GET /`` and the generate page.

SwarmUI maps ``GET /`` to ``Results.Redirect("/Text2Image")`` (a 302; ``src/Core/WebServer.cs``)
and serves its UI there. Health checks rely on it: the HartsyAI worker's ``health`` action and
keepalive pings ``GET`` the SwarmUI root without following redirects and count 200 or a
redirect as alive.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

__all__ = ["serve_generate_page", "serve_root"]

_PAGE: Final = (
    "<!DOCTYPE html><html><head><title>SwarmUI</title></head>"
    "<body><h1>SwarmUI (swarmpod's fake)</h1><p>Generate through /API.</p></body></html>"
)


async def serve_root(request: web.Request) -> web.StreamResponse:
    """``GET /``: a redirect to the generate page, as SwarmUI answers."""
    return web.Response(status=302, headers={"Location": "/Text2Image"})


async def serve_generate_page(request: web.Request) -> web.StreamResponse:
    """``GET /Text2Image``: an HTML page (the real one is SwarmUI's UI)."""
    return web.Response(text=_PAGE, content_type="text/html")

"""Generated outputs: ``GET /View/{user}/...`` (specs/swarmui-api.md §2.4).

A user sees their own outputs; another's need ``view_others_outputs``.
"""

from __future__ import annotations

from aiohttp import web

from ._pipeline import json_response, latency, login_user
from ._state import SwarmState

__all__ = ["serve_view"]


async def serve_view(state: SwarmState, request: web.Request) -> web.StreamResponse:
    """Answer one ``/View`` request with the PNG, or SwarmUI's refusal."""
    await latency(state, "view")
    path = "View/" + request.match_info["path"]
    owner = request.match_info["path"].split("/", 1)[0]
    viewer = login_user(state, request) or "local"  # who fetches it (§2.4)
    if owner != viewer and not state.permitted("view_others_outputs"):
        return json_response(
            {
                "error": "unauthorized - you may not view other users' outputs",
                "error_id": "unauthorized",
            },
            400,
        )
    data = state.outputs.get(path)
    if data is None:
        return json_response({"error": "404, file not found.", "error_id": "file_not_found"}, 404)
    return web.Response(body=data, content_type="image/png")

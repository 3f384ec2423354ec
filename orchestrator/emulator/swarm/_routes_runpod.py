"""The RunPod Serverless extension's routes: ``GetStatus``, ``RefreshModels`` (§8).

Served only with ``SwarmConfig.runpod_extension``. Only a ``RUNNING`` extension backend is
reported and refreshed; a refresh uses the caller's own ``runpod_api`` key.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from ._pipeline import Handler
from ._state import Session, SwarmState

__all__ = ["RUNPOD_ROUTES"]

_RUNPOD_BACKEND_ID: Final = 1


async def _get_status(
    state: SwarmState, session: Session | None, body: dict[str, Any], request: web.Request
) -> dict[str, Any]:
    config = state.config
    backends = []
    if state.runpod_status == "RUNNING":
        backends.append(
            {
                "id": _RUNPOD_BACKEND_ID,
                "title": f"RunPod Serverless ({config.runpod_endpoint_id})",
                "status": "RUNNING",
                "endpoint_id": config.runpod_endpoint_id,
                "model_count": len(config.models),
                "auto_refresh": False,
                "max_concurrent": 10,
            }
        )
    return {"success": True, "total_backends": len(backends), "backends": backends}


async def _refresh_models(
    state: SwarmState, session: Session | None, body: dict[str, Any], request: web.Request
) -> dict[str, Any]:
    assert session is not None
    if state.runpod_status != "RUNNING":
        return {"success": False, "error": "No RunPod backends are currently running"}
    failed = 0 if (session.user_id, "runpod_api") in state.api_keys else 1
    refreshed = 1 - failed
    return {
        "success": True,
        "refreshed": refreshed,
        "failed": failed,
        "message": f"Refreshed {refreshed} RunPod backend(s), {failed} failed.",
    }


RUNPOD_ROUTES: Final[dict[str, Handler]] = {
    "getstatus": _get_status,
    "refreshmodels": _refresh_models,
}
"""The RunPod extension's routes by lower-case name."""

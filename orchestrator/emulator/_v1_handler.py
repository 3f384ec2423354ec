"""The v1 worker handler (HartsyAI ``rp_handler.py``): wakeup, ready, health, keepalive, shutdown.

Outputs follow specs/worker-protocols.md. The handler runs inside its worker's task, so
cancelling its job (or stopping the worker: execution timeout) interrupts a blocking
``keepalive``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import anyio

from ._worker import EmulatedWorker

__all__ = ["V1_ACTIONS", "handle_v1"]

V1_ACTIONS: Final = ("wakeup", "ready", "health", "keepalive", "shutdown")
_SWARMUI_VERSION: Final = "0.9.7.0-emulated"
_KEEPALIVE_DURATION_S: Final = 3600
_KEEPALIVE_INTERVAL_S: Final = 30
_KEEPALIVE_MIN_INTERVAL_S: Final = 1


async def handle_v1(worker: EmulatedWorker, job_input: Any) -> dict[str, Any]:
    """Run one v1 job on ``worker`` and return the handler's dict (``error`` key = FAILED)."""
    inputs: Mapping[str, Any] = job_input if isinstance(job_input, Mapping) else {}
    action = inputs.get("action") or "wakeup"
    alive = worker.swarm.base_url is not None
    if action == "wakeup":
        return {
            "success": True,
            "public_url": worker.public_url,
            "session_id": worker.session_id,
            "version": _SWARMUI_VERSION,
            "worker_id": worker.id,
        }
    if action == "ready":
        return {
            "ready": alive,
            "public_url": worker.public_url,
            "session_id": worker.session_id,
            "version": _SWARMUI_VERSION,
            "worker_id": worker.id,
        }
    if action == "health":
        return {"healthy": alive, "public_url": worker.public_url, "worker_id": worker.id}
    if action == "keepalive":
        return await _keepalive(worker, inputs)
    if action == "shutdown":
        return {"success": True, "message": "Shutdown acknowledged", "worker_id": worker.id}
    return {
        "success": False,
        "error": f"Unknown action: {action}",
        "available_actions": list(V1_ACTIONS),
    }


async def _keepalive(worker: EmulatedWorker, inputs: Mapping[str, Any]) -> dict[str, Any]:
    duration = inputs.get("duration", _KEEPALIVE_DURATION_S)
    interval = inputs.get("interval", _KEEPALIVE_INTERVAL_S)
    if not isinstance(duration, int | float) or isinstance(duration, bool):
        return {"success": False, "error": "duration must be a number"}
    if duration <= 0:
        return {"success": False, "error": "duration must be positive"}
    if not isinstance(interval, int | float) or isinstance(interval, bool):
        return {"success": False, "error": "interval must be a number"}
    interval = max(interval, _KEEPALIVE_MIN_INTERVAL_S)
    pings = failures = 0
    # The intervals are counted, not read from the clock: on a clock that moves on a grid
    # (looptime's), a deadline can stay a hair ahead of it for ever.
    whole, rest = divmod(duration, interval)
    for step in [interval] * int(whole) + ([rest] if rest > 0 else []):
        await anyio.sleep(step)
        if worker.swarm.base_url is not None:
            pings += 1
        else:
            failures += 1
    return {
        "success": True,
        "public_url": worker.public_url,
        "worker_id": worker.id,
        "pings": pings,
        "failures": failures,
        "duration": duration,
        "interval": interval,
    }

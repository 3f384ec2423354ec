"""A v1 SwarmUI worker handler (the HartsyAI action set, written from worker-protocols.md).

``wakeup`` answers once the worker's SwarmUI (``SWARMUI_API_URL``) gives out a session;
``keepalive`` blocks for ``duration`` seconds pinging SwarmUI every ``interval``; ``health``,
``ready`` and ``shutdown`` answer at once. This is the shape of a real SwarmUI worker image, so
swarmpod's engine can drive it end to end on the official ``runpod.serverless`` loop.
"""

import os
import time
from typing import Any

import requests
import runpod

SWARMUI = os.environ["SWARMUI_API_URL"].rstrip("/")
WORKER_ID = os.environ["RUNPOD_POD_ID"]
ACTIONS = ["wakeup", "ready", "health", "keepalive", "shutdown"]


def _session() -> str:
    answer = requests.post(f"{SWARMUI}/API/GetNewSession", json={}, timeout=10)
    answer.raise_for_status()
    session_id: str = answer.json()["session_id"]
    return session_id


def handler(job: dict[str, Any]) -> dict[str, Any]:
    job_input = job["input"] or {}
    action = job_input.get("action") or "wakeup"
    if action in ("wakeup", "ready"):
        return {
            "success": True,
            "ready": True,
            "public_url": SWARMUI,
            "session_id": _session(),
            "worker_id": WORKER_ID,
            "version": "hosted-test",
        }
    if action == "health":
        return {"healthy": True, "public_url": SWARMUI, "worker_id": WORKER_ID}
    if action == "keepalive":
        duration = float(job_input.get("duration", 3600))
        interval = max(1.0, float(job_input.get("interval", 30)))
        deadline = time.monotonic() + duration
        pings = 0
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(interval, left))
            pings += requests.get(SWARMUI, timeout=10).ok
        return {"success": True, "worker_id": WORKER_ID, "pings": pings}
    if action == "shutdown":
        return {"success": True, "message": "Shutdown acknowledged", "worker_id": WORKER_ID}
    return {"success": False, "error": f"Unknown action: {action}", "available_actions": ACTIONS}


runpod.serverless.start({"handler": handler})

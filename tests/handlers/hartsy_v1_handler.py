"""A handler that behaves like HartsyAI RunPod-Worker-SwarmUI ``src/rp_handler.py`` (v1).

Written from that worker's behaviour, not copied: it reads ``SWARMUI_API_URL``, ``SWARMUI_PORT``
and ``RUNPOD_POD_ID``; blocks at start until SwarmUI hands out a session and caches it; reports
RunPod's proxy URL ``https://{RUNPOD_POD_ID}-{SWARMUI_PORT}.proxy.runpod.net`` whatever runs it;
``health`` and the keepalive pings ``GET`` the SwarmUI root without following redirects and
count 200 or a redirect as alive. The handler is synchronous, so a ``keepalive`` blocks the
worker's event loop (a stop signal cannot interrupt it), as the real one does.
"""

import os
import sys
import time
from typing import Any

import requests
import runpod

SWARMUI = os.getenv("SWARMUI_API_URL", "http://127.0.0.1:7801").rstrip("/")
PORT = os.getenv("SWARMUI_PORT", "7801")
WORKER_ID = os.getenv("RUNPOD_POD_ID", "unknown")
STARTUP_TIMEOUT_S = int(os.getenv("STARTUP_TIMEOUT", "60"))
ALIVE = (200, 301, 302, 303, 307, 308)
ACTIONS = ["wakeup", "ready", "health", "keepalive", "shutdown"]
cached: dict[str, str] = {}


def public_url() -> str:
    return f"https://{WORKER_ID}-{PORT}.proxy.runpod.net"


def new_session() -> None:
    answer = requests.post(f"{SWARMUI}/API/GetNewSession", json={}, timeout=10)
    answer.raise_for_status()
    body = answer.json()
    cached.update(session_id=body["session_id"], version=body.get("version", "unknown"))


def alive() -> bool:
    try:
        status: int = requests.get(SWARMUI, timeout=5, allow_redirects=False).status_code
        return status in ALIVE
    except requests.RequestException:
        return False


def connection(**extra: object) -> dict[str, object]:
    return {
        "public_url": public_url(),
        "session_id": cached["session_id"],
        "version": cached["version"],
        "worker_id": WORKER_ID,
        **extra,
    }


def keepalive(job_input: dict[str, Any]) -> dict[str, Any]:
    duration = int(job_input.get("duration", 3600))
    interval = max(1, int(job_input.get("interval", 30)))
    if duration <= 0:
        return {"success": False, "error": "duration must be positive"}
    pings = failures = 0
    ends = time.time() + duration
    while time.time() < ends:
        if alive():
            pings += 1
        else:
            failures += 1
        time.sleep(interval)
    return {
        "success": True,
        "public_url": public_url(),
        "worker_id": WORKER_ID,
        "pings": pings,
        "failures": failures,
        "duration": duration,
        "interval": interval,
    }


def handler(job: dict[str, Any]) -> dict[str, Any]:
    job_input = job.get("input") or {}
    action = job_input.get("action", "wakeup")
    if action == "wakeup":
        return connection(success=True)
    if action == "ready":
        return connection(ready=True)
    if action == "health":
        return {"healthy": alive(), "public_url": public_url(), "worker_id": WORKER_ID}
    if action == "keepalive":
        return keepalive(job_input)
    if action == "shutdown":
        return {"success": True, "message": "Shutdown acknowledged", "worker_id": WORKER_ID}
    return {"success": False, "error": f"Unknown action: {action}", "available_actions": ACTIONS}


if __name__ == "__main__":
    deadline = time.time() + STARTUP_TIMEOUT_S
    while True:
        try:
            new_session()
            break
        except (requests.RequestException, KeyError, ValueError):
            if time.time() > deadline:
                print("SwarmUI did not start", file=sys.stderr)
                sys.exit(1)
            time.sleep(1)
    runpod.serverless.start({"handler": handler})

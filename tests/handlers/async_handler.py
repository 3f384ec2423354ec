"""An async RunPod handler: doubles ``n`` after ``sleep_s`` seconds.

A job that sleeps first reports ``{"sleeping": sleep_s}`` as progress, so a client can tell the
handler is running.
"""

import asyncio
from typing import Any

import runpod


async def handler(job: dict[str, Any]) -> dict[str, Any]:
    job_input = job["input"]
    sleep_s = float(job_input.get("sleep_s", 0))
    if sleep_s:
        runpod.serverless.progress_update(job, {"sleeping": sleep_s})
    await asyncio.sleep(sleep_s)
    return {"doubled": 2 * job_input["n"]}


runpod.serverless.start({"handler": handler})

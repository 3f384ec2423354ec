"""A synchronous RunPod handler: echoes its input with what the worker was given.

``{"sleep_s": N}`` blocks the worker for N seconds first (a sync handler cannot be stopped).
"""

import os
import time
from typing import Any

import runpod


def handler(job: dict[str, Any]) -> dict[str, Any]:
    job_input = job["input"]
    time.sleep(float(job_input.get("sleep_s", 0)))
    env = {name: value for name, value in os.environ.items() if name.startswith("RUNPOD_")}
    env.pop("RUNPOD_AI_API_KEY", None)  # a secret never goes into an output
    return {"echo": job_input, "env": env, "pid": os.getpid()}


runpod.serverless.start({"handler": handler})

"""A RunPod handler that sends a progress update, then waits for ``release`` (a file) to exist."""

import pathlib
import time
from typing import Any

import runpod


def handler(job: dict[str, Any]) -> dict[str, int]:
    runpod.serverless.progress_update(job, {"step": 1, "of": 2})
    release = pathlib.Path(job["input"]["release"])
    while not release.exists():
        time.sleep(0.05)
    return {"step": 2, "of": 2}


runpod.serverless.start({"handler": handler})

"""A RunPod handler started with ``refresh_worker``: a fresh process after every job."""

import os
from typing import Any

import runpod


def handler(job: dict[str, Any]) -> dict[str, int]:
    return {"pid": os.getpid()}


runpod.serverless.start({"handler": handler, "refresh_worker": True})

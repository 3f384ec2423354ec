"""A RunPod handler that returns ``{"error": ...}``: the job FAILS with that message."""

from typing import Any

import runpod


def handler(job: dict[str, Any]) -> dict[str, Any]:
    return {"error": f"no such model: {job['input']['model']}", "tried": ["sdxl"]}


runpod.serverless.start({"handler": handler})

"""A RunPod handler that returns ``{"error": ...}``: the job FAILS with that message."""

import runpod


def handler(job):
    return {"error": f"no such model: {job['input']['model']}", "tried": ["sdxl"]}


runpod.serverless.start({"handler": handler})

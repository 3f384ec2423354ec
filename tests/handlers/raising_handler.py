"""A RunPod handler that raises: the job FAILS with the SDK's JSON error string."""

import runpod


def handler(job):
    raise ValueError(f"cannot render {job['input']['prompt']!r}")


runpod.serverless.start({"handler": handler})

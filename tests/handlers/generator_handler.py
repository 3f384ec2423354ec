"""A generator RunPod handler: streams ``count`` chunks, one per ``yield``."""

import runpod


def handler(job):
    for index in range(job["input"]["count"]):
        yield {"chunk": index}


runpod.serverless.start({"handler": handler})

"""A RunPod handler started with ``refresh_worker``: a fresh process after every job."""

import os

import runpod


def handler(job):
    return {"pid": os.getpid()}


runpod.serverless.start({"handler": handler, "refresh_worker": True})

"""A RunPod handler whose process dies mid-job, as a CUDA crash would take a worker down."""

import os
import sys
from typing import Any, NoReturn

import runpod


def handler(job: dict[str, Any]) -> NoReturn:
    print("CUDA error: an illegal memory access was encountered", file=sys.stderr, flush=True)
    os._exit(3)


runpod.serverless.start({"handler": handler})

"""A generator RunPod handler: streams ``count`` chunks, one per ``yield``."""

from collections.abc import Iterator
from typing import Any

import runpod


def handler(job: dict[str, Any]) -> Iterator[dict[str, int]]:
    for index in range(job["input"]["count"]):
        yield {"chunk": index}


runpod.serverless.start({"handler": handler})

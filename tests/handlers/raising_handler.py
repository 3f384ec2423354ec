"""A RunPod handler that raises: the job FAILS with the SDK's JSON error string."""

from typing import Any, NoReturn

import runpod


def handler(job: dict[str, Any]) -> NoReturn:
    raise ValueError(f"cannot render {job['input']['prompt']!r}")


runpod.serverless.start({"handler": handler})

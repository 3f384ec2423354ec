"""RunPod serverless REST client (queue-based endpoints): ``/run``, ``/status``, ``/cancel``, ...

Facts it is built to: ``specs/runpod-api.md``. Errors come from :mod:`orchestrator.errors`.
"""

from ._calls import ApiCall as ApiCall
from ._calls import RetryNotice as RetryNotice
from ._client import DEFAULT_BASE_URL as DEFAULT_BASE_URL
from ._client import RunPodClient as RunPodClient
from ._models import Health as Health
from ._models import HealthJobs as HealthJobs
from ._models import HealthWorkers as HealthWorkers
from ._models import Job as Job
from ._models import JobPolicy as JobPolicy
from ._models import JobStatus as JobStatus
from ._models import PurgeResult as PurgeResult
from ._models import StreamChunk as StreamChunk

__all__ = [
    "DEFAULT_BASE_URL",
    "ApiCall",
    "Health",
    "HealthJobs",
    "HealthWorkers",
    "Job",
    "JobPolicy",
    "JobStatus",
    "PurgeResult",
    "RetryNotice",
    "RunPodClient",
    "StreamChunk",
]

"""The seed extension's way to generate, re-enacted with swarmpod's clients (v1 workers).

The seed (SwarmUI's RunPod Serverless extension, specs/swarmui-api.md §8.4) does this for every
single generation, with no warm pool and no lease:

1. ``POST /run {input: {action: wakeup}}``, then, as its ``RunAsync`` helper does with every
   async job, ``GET /status/{id}`` every second until the job is terminal (at most 300 polls);
2. readiness: a NEW ``ready`` job via ``POST /runsync`` (RunPod's default wait), again every
   ``PollIntervalMs`` until one answers ``ready: true``;
3. the generation, straight to the worker's SwarmUI at the ``public_url`` with the session the
   worker handed out (``GenerateText2Image`` over HTTP; the seed has no live progress);
4. ``POST /runsync {input: {action: shutdown}}``, which only acknowledges: the worker then
   idles out by the endpoint's idle timeout.

Concurrent requests each do all of this on their own. The seed's ``ListBackends`` and
``SelectModel`` calls before generating are left out: they are SwarmUI calls, not RunPod calls,
and cost no GPU-second the generation would not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import anyio

from orchestrator.errors import OrchestratorError
from orchestrator.runpod import Job, JobStatus, RunPodClient
from orchestrator.swarmui import SwarmUIClient

__all__ = ["SeedError", "SeedResult", "seed_generate"]

STATUS_INTERVAL_S: Final = 1.0
"""The seed's ``RunAsync`` polls ``/status`` this often."""
MAX_STATUS_POLLS: Final = 300
STARTUP_TIMEOUT_S: Final = 800.0
"""The seed's StartupTimeoutSec as its code sets it (the README says 120)."""
_COLD_DELAY_MS: Final = 1000
"""A wake-up job that waited longer than this for a worker found none warm."""


class SeedError(OrchestratorError):
    """Raised when the seed's flow gives up: a job failed, or the worker never became ready."""


@dataclass(frozen=True)
class SeedResult:
    """What one seed generation did.

    Attributes:
        images: how many images came back.
        cold_start: whether the wake-up job had to wait for a worker to start.
        worker_id: the worker that generated.
    """

    images: int
    cold_start: bool
    worker_id: str | None


async def seed_generate(
    client: RunPodClient,
    http: aiohttp.ClientSession,
    params: Mapping[str, Any],
    *,
    images: int = 1,
    poll_interval_s: float = 2.0,
) -> SeedResult:
    """Generate ``images`` images the way the seed extension does (see the module docstring).

    Raises:
        SeedError: the wake-up or a readiness job failed, or readiness took over 800 s.
        OrchestratorError: a RunPod or SwarmUI call failed (e.g. the worker idled out
            mid-generation: the generation is no RunPod job, so RunPod sees an idle worker).
    """
    wake = await _run_async(client, {"action": "wakeup"})
    output = wake.output if isinstance(wake.output, Mapping) else {}
    if wake.state is not JobStatus.COMPLETED or output.get("success") is not True:
        raise SeedError(f"wakeup ended {wake.status}: {wake.error or output.get('error')}")
    cold = (wake.delay_time or 0) > _COLD_DELAY_MS
    with anyio.fail_after(STARTUP_TIMEOUT_S):
        ready = await _until_ready(client, poll_interval_s)
    swarm = SwarmUIClient(
        http,
        str(ready["public_url"]),
        session_id=ready.get("session_id"),
        worker_id=ready.get("worker_id"),
    )
    found = await swarm.generate(params, images=images, transport="http")
    await client.runsync({"action": "shutdown"})
    return SeedResult(len(found), cold, ready.get("worker_id"))


async def _run_async(client: RunPodClient, job_input: Mapping[str, Any]) -> Job:
    """``/run`` then ``/status`` every second until terminal (the seed's ``RunAsync``)."""
    job = await client.run(job_input)
    for _ in range(MAX_STATUS_POLLS):
        await anyio.sleep(STATUS_INTERVAL_S)
        job = await client.status(job.id)
        if job.state.is_terminal:
            return job
    raise SeedError(f"job {job.id} still {job.status} after {MAX_STATUS_POLLS} polls")


async def _until_ready(client: RunPodClient, poll_interval_s: float) -> Mapping[str, Any]:
    """Submit ``ready`` jobs (``/runsync``) until one answers ``ready: true``."""
    while True:
        job = await client.runsync({"action": "ready"})
        output = job.output if isinstance(job.output, Mapping) else {}
        if job.state is JobStatus.COMPLETED and output.get("ready") is True:
            return output
        if job.state in (JobStatus.FAILED, JobStatus.CANCELLED):
            raise SeedError(f"ready job {job.id} ended {job.status}: {job.error}")
        await anyio.sleep(poll_interval_s)

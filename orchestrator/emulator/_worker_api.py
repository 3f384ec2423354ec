"""The worker-facing routes a hosted worker's ``runpod.serverless`` loop calls (spec §6.3).

Mounted next to the client routes, under ``/v2/{endpoint_id}/``:

==========================================  ===============================================
``GET  job-take/{worker}``                  long-poll (at most :data:`TAKE_WAIT_S`): 200 with
                                            ``{"id", "input"}``, or 204 = no job
``GET  job-take-batch/{worker}``            the same with ``batch_size=N``: 200 with a list
``GET  job-stop/{worker}``                  long-poll (at most :data:`STOP_WAIT_S`): 204, or
                                            200 ``{"jobsToStop": [...]}``
``POST job-done/{worker}/{job}``            the result (or ``{"status": "IN_PROGRESS"}``
                                            progress); JSON text whatever the content type
``POST job-stream/{worker}/{job}``          ``{"output": chunk}``, one per ``yield``
``GET  ping/{worker}``                      heartbeat: ``job_id=a,b``, ``status=unhealthy``
==========================================  ===============================================

Every route needs the raw ``Authorization: <key>`` the worker's process was given as
``RUNPOD_AI_API_KEY`` (401 otherwise; the account's API keys are not worker keys). A report
about a job the emulator no longer has gets 404; one about a job that is no longer the
worker's (cancelled, timed out) is discarded with 200 ``{"discarded": true}``. Worker routes
are neither rate limited, fault-scripted nor counted in ``api_calls``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import msgspec
from aiohttp import web

from ._endpoint import EmulatedEndpoint
from ._hosted_channel import Delivery
from ._jobs import EmulatedJob
from ._worker import EmulatedWorker

__all__ = ["MAX_BATCH", "STOP_WAIT_S", "TAKE_WAIT_S", "add_worker_routes"]

_log = logging.getLogger("swarmpod.emulator")

TAKE_WAIT_S: Final = 20.0
"""The longest a job-take waits for a job before its 204 (the SDK gives up after 90 s)."""

STOP_WAIT_S: Final = 20.0
"""The longest a job-stop waits for a stop signal before its 204 (SDK timeout: 90 s)."""

MAX_BATCH: Final = 100
"""The most jobs one batch job-take hands out."""

_WorkerHandler = Callable[[web.Request, EmulatedEndpoint, EmulatedWorker], Awaitable[web.Response]]


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def add_worker_routes(app: web.Application, endpoints: Mapping[str, EmulatedEndpoint]) -> None:
    """Mount the worker-facing routes of every endpoint in ``endpoints`` on ``app``."""

    def gate(handler: _WorkerHandler) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def serve(request: web.Request) -> web.Response:
            endpoint = endpoints.get(request.match_info["endpoint_id"])
            if endpoint is None:
                return _error(404, "endpoint not found")
            worker_id = request.match_info["worker_id"]
            key = request.headers.get("Authorization", "").strip()
            worker = endpoint.hosted.authenticate(worker_id, key)
            if worker is None:
                _log.warning(
                    "[Emulator] %s: worker route %s refused for worker %s: not its key "
                    "(a ~/.runpod/config.toml api_key overrides RUNPOD_AI_API_KEY in the SDK)",
                    endpoint.endpoint_id,
                    request.path,
                    worker_id,
                )
                return _error(401, "Unauthorized: not this worker's key")
            return await handler(request, endpoint, worker)

        return serve

    prefix = "/v2/{endpoint_id}"
    app.router.add_get(f"{prefix}/job-take/{{worker_id}}", gate(_take))
    app.router.add_get(f"{prefix}/job-take-batch/{{worker_id}}", gate(_take_batch))
    app.router.add_get(f"{prefix}/job-stop/{{worker_id}}", gate(_stop))
    app.router.add_post(f"{prefix}/job-done/{{worker_id}}/{{job_id}}", gate(_done))
    app.router.add_post(f"{prefix}/job-stream/{{worker_id}}/{{job_id}}", gate(_stream))
    app.router.add_get(f"{prefix}/ping/{{worker_id}}", gate(_ping))


def _job_body(job: EmulatedJob) -> dict[str, Any]:
    return {"id": job.id, "input": job.input}


async def _take(
    request: web.Request, endpoint: EmulatedEndpoint, worker: EmulatedWorker
) -> web.Response:
    jobs = await endpoint.hosted.take_jobs(worker, 1, TAKE_WAIT_S)
    if not jobs:
        return web.Response(status=204)
    return web.json_response(_job_body(jobs[0]))


async def _take_batch(
    request: web.Request, endpoint: EmulatedEndpoint, worker: EmulatedWorker
) -> web.Response:
    try:
        size = int(request.query.get("batch_size", "1"))
    except ValueError:
        return _error(400, "batch_size must be an integer")
    if not 1 <= size <= MAX_BATCH:
        return _error(400, f"batch_size must be 1..{MAX_BATCH}")
    jobs = await endpoint.hosted.take_jobs(worker, size, TAKE_WAIT_S)
    if not jobs:
        return web.Response(status=204)
    return web.json_response([_job_body(job) for job in jobs])


async def _stop(
    request: web.Request, endpoint: EmulatedEndpoint, worker: EmulatedWorker
) -> web.Response:
    job_ids = await endpoint.hosted.stop_signals(worker, STOP_WAIT_S)
    if not job_ids:
        return web.Response(status=204)
    return web.json_response({"jobsToStop": job_ids})


async def _json_object(request: web.Request) -> dict[str, Any] | web.Response:
    """The body as a JSON object; the SDK sends JSON text as form-urlencoded (spec §6.3)."""
    try:
        body = msgspec.json.decode(await request.read())
    except msgspec.DecodeError:
        return _error(400, "body is not JSON")
    if not isinstance(body, dict):
        return _error(400, "body must be a JSON object")
    return body


def _delivered(delivery: Delivery) -> web.Response:
    if delivery is Delivery.UNKNOWN:
        return _error(404, "job not found")
    if delivery is Delivery.DISCARDED:
        return web.json_response({"discarded": True})
    return web.json_response({})


async def _done(
    request: web.Request, endpoint: EmulatedEndpoint, worker: EmulatedWorker
) -> web.Response:
    body = await _json_object(request)
    if isinstance(body, web.Response):
        return body
    delivery = endpoint.hosted.result_from_worker(worker, request.match_info["job_id"], body)
    return _delivered(delivery)


async def _stream(
    request: web.Request, endpoint: EmulatedEndpoint, worker: EmulatedWorker
) -> web.Response:
    body = await _json_object(request)
    if isinstance(body, web.Response):
        return body
    if "output" not in body:
        return _error(400, "a stream chunk needs 'output'")
    job_id = request.match_info["job_id"]
    delivery = endpoint.hosted.stream_from_worker(worker, job_id, body["output"])
    return _delivered(delivery)


async def _ping(
    request: web.Request, endpoint: EmulatedEndpoint, worker: EmulatedWorker
) -> web.Response:
    query = request.query
    job_ids = [job_id for job_id in query.get("job_id", "").split(",") if job_id]
    unhealthy = None
    if query.get("status") == "unhealthy":
        check, reason = query.get("check", "?"), query.get("reason", "")
        unhealthy = f"{check}: {reason}" if reason else check
    endpoint.hosted.ping_from_worker(worker, job_ids, unhealthy)
    return web.json_response({})

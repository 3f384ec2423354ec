"""The emulated RunPod API over HTTP: routes under ``/v2/{endpoint_id}/`` (spec §2, §3).

Each request goes through the same gate (auth -> endpoint -> scripted fault) and is then served
by one small handler per route. Errors are ``{"error": "<message>"}`` JSON bodies.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import anyio
import msgspec
from aiohttp import web

from ._endpoint import EmulatedEndpoint
from ._jobs import EmulatedJob

__all__ = ["build_app"]

_RUNSYNC_WAIT_MS: Final = (1000, 90_000, 300_000)  # min, default, max
_MAX_BODY: Final = {"run": 10 * 1024 * 1024, "runsync": 20 * 1024 * 1024}

_Handler = Callable[[web.Request, EmulatedEndpoint], Awaitable[web.Response]]


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def _key_of(request: web.Request) -> str:
    value = request.headers.get("Authorization", "").strip()
    scheme, _, rest = value.partition(" ")
    return rest.strip() if scheme.lower() == "bearer" else value


def build_app(
    endpoints: Mapping[str, EmulatedEndpoint], api_keys: tuple[str, ...]
) -> web.Application:
    """The aiohttp application serving every endpoint in ``endpoints``."""
    app = web.Application(client_max_size=max(_MAX_BODY.values()) + 1)

    def gate(route: str, handler: _Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def serve(request: web.Request) -> web.Response:
            endpoint = endpoints.get(request.match_info["endpoint_id"])
            response = _error(500, "internal error")
            try:
                response = await _gated(request, endpoint, route, handler, api_keys)
                return response
            finally:
                if endpoint is not None:
                    endpoint.api_calls.append((request.method, route, response.status))

        return serve

    routes: list[tuple[tuple[str, ...], str, str, _Handler]] = [
        (("POST",), "run", "run", _run),
        (("POST",), "runsync", "runsync", _runsync),
        (("GET", "POST"), "status/{job_id}", "status", _status),
        (("GET", "POST"), "stream/{job_id}", "stream", _stream),
        (("POST",), "cancel/{job_id}", "cancel", _cancel),
        (("GET",), "health", "health", _health),
        (("POST",), "purge-queue", "purge-queue", _purge),
    ]
    for methods, path, route, handler in routes:
        for method in methods:
            app.router.add_route(method, f"/v2/{{endpoint_id}}/{path}", gate(route, handler))
    return app


async def _gated(
    request: web.Request,
    endpoint: EmulatedEndpoint | None,
    route: str,
    handler: _Handler,
    api_keys: tuple[str, ...],
) -> web.Response:
    if _key_of(request) not in api_keys:
        return _error(401, "Unauthorized: missing or unknown API key")
    if endpoint is None:
        return _error(404, "endpoint not found")
    fault = endpoint.faults.take(route)
    if fault is None:
        return await handler(request, endpoint)
    headers = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = f"{fault.retry_after:g}"
    return _error(fault.status, "injected fault", headers)


async def _read_job_request(
    request: web.Request, route: str
) -> tuple[Any, dict[str, Any], str | None] | web.Response:
    raw = await request.read()
    if len(raw) > _MAX_BODY[route]:
        return _error(413, f"request body over the /{route} limit")
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return _error(400, "body is not JSON")
    if not isinstance(body, dict) or "input" not in body:
        return _error(400, "body must be a JSON object with 'input'")
    policy = body.get("policy") or {}
    webhook = body.get("webhook")
    if not isinstance(policy, dict) or not (webhook is None or isinstance(webhook, str)):
        return _error(400, "'policy' must be an object and 'webhook' a string")
    timeout = policy.get("executionTimeout")
    if timeout is not None and (not isinstance(timeout, int) or timeout <= 0):
        return _error(400, "policy.executionTimeout must be a positive integer (ms)")
    return body["input"], policy, webhook


def _now() -> float:
    return anyio.current_time()


def _job_of(request: web.Request, endpoint: EmulatedEndpoint) -> EmulatedJob | None:
    return endpoint.jobs.get(request.match_info["job_id"])


async def _run(request: web.Request, endpoint: EmulatedEndpoint) -> web.Response:
    parsed = await _read_job_request(request, "run")
    if isinstance(parsed, web.Response):
        return parsed
    job = endpoint.submit(*parsed, sync=False)
    return web.json_response({"id": job.id, "status": job.status})


async def _runsync(request: web.Request, endpoint: EmulatedEndpoint) -> web.Response:
    low, default, high = _RUNSYNC_WAIT_MS
    try:
        wait_ms = int(request.query.get("wait", default))
    except ValueError:
        return _error(400, "wait must be an integer (ms)")
    parsed = await _read_job_request(request, "runsync")
    if isinstance(parsed, web.Response):
        return parsed
    job = endpoint.submit(*parsed, sync=True)
    await endpoint.wait_terminal(job, min(max(wait_ms, low), high) / 1000)
    return web.json_response(job.to_api(_now()))


async def _status(request: web.Request, endpoint: EmulatedEndpoint) -> web.Response:
    job = _job_of(request, endpoint)
    if job is None:
        return _error(404, "job not found")
    return web.json_response(job.to_api(_now()))


async def _stream(request: web.Request, endpoint: EmulatedEndpoint) -> web.Response:
    job = _job_of(request, endpoint)
    if job is None:
        return _error(404, "job not found")
    chunks = [{"output": output} for output in job.take_stream()]
    return web.json_response({"status": job.status, "stream": chunks})


async def _cancel(request: web.Request, endpoint: EmulatedEndpoint) -> web.Response:
    job = _job_of(request, endpoint)
    if job is None:
        return _error(404, "job not found")
    endpoint.cancel(job)
    return web.json_response(job.to_api(_now()))


async def _health(request: web.Request, endpoint: EmulatedEndpoint) -> web.Response:
    return web.json_response(endpoint.health())


async def _purge(request: web.Request, endpoint: EmulatedEndpoint) -> web.Response:
    return web.json_response({"removed": endpoint.purge_queue(), "status": "completed"})

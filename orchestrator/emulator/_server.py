"""The emulated RunPod API over HTTP: routes under ``/v2/{endpoint_id}/`` (spec §2, §3).

Each request goes through the same gate (auth -> endpoint -> rate limit -> scripted fault) and
is then served by one small handler per route. Errors are ``{"error": "<message>"}`` JSON bodies.

Two routes are emulator-only, not RunPod's: ``GET /v2/{endpoint_id}/_emulator/ledger`` answers
the endpoint's billing ledger (:meth:`EmulatedEndpoint.ledger_json`), and
``GET /v2/{endpoint_id}/_emulator/workers`` its workers (id, state, the URL each reports and
where its SwarmUI really listens, for :class:`EmulatorProxyRouting`). They need an API key but
are neither rate limited, fault-scripted nor counted in ``api_calls``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import anyio
import msgspec
from aiohttp import web

from orchestrator.secrets import Secret

from ._config import PolicyLimits
from ._endpoint import EmulatedEndpoint
from ._faults import DropAfterAnswer, DropConnection, HttpFault, Latency, MalformedBody
from ._jobs import EmulatedJob
from ._ratelimit import retry_after_header
from ._worker import EmulatedWorker
from ._worker_api import add_worker_routes

__all__ = ["build_app"]

_RUNSYNC_WAIT_MS: Final = (1000, 90_000, 300_000)  # min, default, max
_LONG_POLL_MAX_MS: Final = 300_000  # /status-sync and /stream ?wait= (no default: answer at once)
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
        (("GET", "POST"), "status-sync/{job_id}", "status-sync", _status_sync),
        (("GET", "POST"), "stream/{job_id}", "stream", _stream),
        (("POST",), "cancel/{job_id}", "cancel", _cancel),
        (("POST",), "retry/{job_id}", "retry", _retry),
        (("GET",), "health", "health", _health),
        (("POST",), "purge-queue", "purge-queue", _purge),
    ]
    for methods, path, route, handler in routes:
        for method in methods:
            app.router.add_route(method, f"/v2/{{endpoint_id}}/{path}", gate(route, handler))

    async def ledger(request: web.Request) -> web.Response:
        endpoint = endpoints.get(request.match_info["endpoint_id"])
        if _key_of(request) not in api_keys:
            return _error(401, "Unauthorized: missing or unknown API key")
        if endpoint is None:
            return _error(404, "endpoint not found")
        return web.json_response(endpoint.ledger_json())

    async def workers(request: web.Request) -> web.Response:
        endpoint = endpoints.get(request.match_info["endpoint_id"])
        if _key_of(request) not in api_keys:
            return _error(401, "Unauthorized: missing or unknown API key")
        if endpoint is None:
            return _error(404, "endpoint not found")
        return web.json_response({"workers": [_worker_json(w) for w in endpoint.workers]})

    app.router.add_get("/v2/{endpoint_id}/_emulator/ledger", ledger)
    app.router.add_get("/v2/{endpoint_id}/_emulator/workers", workers)
    add_worker_routes(app, endpoints)  # job-take, job-done, ... of hosted workers (_worker_api)
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
    if endpoint.rate_limiter is not None:
        wait_s = endpoint.rate_limiter.admit(_key_of(request), route)
        if wait_s is not None:
            headers = {"Retry-After": retry_after_header(wait_s)}
            return _error(429, f"rate limit of /{route} exceeded", headers)
    fault = endpoint.faults.take(route)
    if fault is None:
        return await handler(request, endpoint)
    if isinstance(fault, Latency):
        await anyio.sleep(fault.seconds)
        return await handler(request, endpoint)
    if isinstance(fault, MalformedBody):
        served = await handler(request, endpoint)
        body = served.body if isinstance(served.body, bytes) else b"{}"
        return web.Response(
            body=body[: len(body) // 2], status=200, content_type="application/json"
        )
    if isinstance(fault, DropConnection):
        return _drop(request)
    if isinstance(fault, DropAfterAnswer):
        await handler(request, endpoint)
        return _drop(request)
    assert isinstance(fault, HttpFault)
    headers = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = f"{fault.retry_after:g}"
    return _error(fault.status, "injected fault", headers)


def _drop(request: web.Request) -> web.Response:
    """Close the client's connection without an answer (aiohttp writes nothing after this)."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    return web.Response(status=499)  # never sent; recorded as 499 in api_calls


async def _read_job_request(
    request: web.Request, route: str, limits: PolicyLimits
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
    for name in ("executionTimeout", "ttl"):
        value = policy.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            return _error(400, f"policy.{name} must be a positive integer (ms)")
        refusal = limits.refusal(name, value)
        if refusal is not None:
            return _error(400, refusal)
    return body["input"], policy, webhook


def _worker_json(worker: EmulatedWorker) -> dict[str, Any]:
    return {
        "id": worker.id,
        "state": worker.state.value,
        "public_url": worker.public_url,
        "local_url": worker.local_url if worker.live else None,
    }


def _now() -> float:
    return anyio.current_time()


def _job_of(request: web.Request, endpoint: EmulatedEndpoint) -> EmulatedJob | None:
    return endpoint.jobs.get(request.match_info["job_id"])


async def _run(request: web.Request, endpoint: EmulatedEndpoint) -> web.Response:
    parsed = await _read_job_request(request, "run", endpoint.config.policy_limits)
    if isinstance(parsed, web.Response):
        return parsed
    job = endpoint.submit(*parsed, sync=False)
    job.key_fingerprint = Secret(_key_of(request), ephemeral=True).fingerprint
    return web.json_response({"id": job.id, "status": job.status})


async def _runsync(request: web.Request, endpoint: EmulatedEndpoint) -> web.Response:
    low, default, high = _RUNSYNC_WAIT_MS
    try:
        wait_ms = int(request.query.get("wait", default))
    except ValueError:
        return _error(400, "wait must be an integer (ms)")
    parsed = await _read_job_request(request, "runsync", endpoint.config.policy_limits)
    if isinstance(parsed, web.Response):
        return parsed
    job = endpoint.submit(*parsed, sync=True)
    job.key_fingerprint = Secret(_key_of(request), ephemeral=True).fingerprint
    await endpoint.wait_terminal(job, min(max(wait_ms, low), high) / 1000)
    return web.json_response(job.to_api(_now()))


def _long_poll_s(request: web.Request) -> float | web.Response:
    """The ``?wait=`` of a long-poll in seconds (0 when absent, at most 300 s)."""
    try:
        wait_ms = int(request.query.get("wait", 0))
    except ValueError:
        return _error(400, "wait must be an integer (ms)")
    return min(max(wait_ms, 0), _LONG_POLL_MAX_MS) / 1000


async def _status(request: web.Request, endpoint: EmulatedEndpoint) -> web.Response:
    job = _job_of(request, endpoint)
    if job is None:
        return _error(404, "job not found")
    return web.json_response(job.to_api(_now()))


async def _status_sync(request: web.Request, endpoint: EmulatedEndpoint) -> web.Response:
    """Long-poll status (JS/Go SDKs): answer once terminal or after ``?wait=`` ms."""
    wait_s = _long_poll_s(request)
    if isinstance(wait_s, web.Response):
        return wait_s
    job = _job_of(request, endpoint)
    if job is None:
        return _error(404, "job not found")
    await endpoint.wait_until(
        lambda: job.state.is_terminal or endpoint.jobs.get(job.id) is not job, wait_s
    )
    if endpoint.jobs.get(job.id) is not job:
        return _error(404, "job not found")
    return web.json_response(job.to_api(_now()))


async def _stream(request: web.Request, endpoint: EmulatedEndpoint) -> web.Response:
    wait_s = _long_poll_s(request)
    if isinstance(wait_s, web.Response):
        return wait_s
    job = _job_of(request, endpoint)
    if job is None:
        return _error(404, "job not found")

    def news() -> bool:
        gone = endpoint.jobs.get(job.id) is not job
        return gone or job.state.is_terminal or len(job.stream) > job.stream_cursor

    await endpoint.wait_until(news, wait_s)
    if endpoint.jobs.get(job.id) is not job:
        return _error(404, "job not found")
    chunks = [{"output": output} for output in job.take_stream()]
    return web.json_response({"status": job.status, "stream": chunks})


async def _retry(request: web.Request, endpoint: EmulatedEndpoint) -> web.Response:
    job = _job_of(request, endpoint)
    if job is None:
        return _error(404, "job not found")
    if not endpoint.retry(job):
        return _error(400, f"only FAILED or TIMED_OUT jobs can be retried, not {job.status}")
    return web.json_response({"id": job.id, "status": job.status})


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

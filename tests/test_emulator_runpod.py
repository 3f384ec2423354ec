"""The emulated RunPod API (runpod-api.md §2-§3, §8 items 1-7, 12, 14, 15, 18) and v1 actions."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import anyio
import pytest

import orchestrator.emulator as emulator_pkg
from orchestrator.emulator import (
    EmulatedEndpoint,
    Emulator,
    EmulatorConfig,
    EndpointConfig,
    EndpointFaults,
)
from orchestrator.emulator._jobs import outcome_of_exception, outcome_of_value

pytestmark = pytest.mark.anyio

WARM = EndpointConfig(min_workers=1, cold_start_s=30.0)


class Api:
    """Raw HTTP against the emulator, so tests see exactly what goes over the wire."""

    def __init__(self, session: aiohttp.ClientSession, emulator: Emulator) -> None:
        self.session = session
        self.emulator = emulator

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        endpoint: str = "local-ep",
        auth: str | None = "Bearer test-key",
        raw: bytes | None = None,
    ) -> tuple[int, Any, Mapping[str, str]]:
        headers = {} if auth is None else {"Authorization": auth}
        url = f"{self.emulator.base_url}/{endpoint}/{path}"
        kwargs: dict[str, Any] = {"json": body} if raw is None else {"data": io.BytesIO(raw)}
        async with self.session.request(method, url, headers=headers, **kwargs) as response:
            assert response.content_type == "application/json"
            return response.status, await response.json(), response.headers

    async def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, payload, _ = await self.call(method, path, body)
        assert status == 200, payload
        return payload


@asynccontextmanager
async def emulated(endpoint: EndpointConfig = WARM) -> AsyncIterator[tuple[Api, EmulatedEndpoint]]:
    config = EmulatorConfig(endpoints={"local-ep": endpoint})
    no_total = aiohttp.ClientTimeout(total=None)  # a /runsync may hold the request 300 s
    async with Emulator(config) as emulator, aiohttp.ClientSession(timeout=no_total) as session:
        yield Api(session, emulator), emulator.endpoint("local-ep")


async def until(
    condition: Callable[[], bool], *, within_s: float = 600.0, step_s: float = 1.0
) -> None:
    """Wait (in loop time, checking every ``step_s``) until ``condition`` holds."""
    with anyio.fail_after(within_s):
        while not condition():  # noqa: ASYNC110 (state is plain attributes, no event to wait on)
            await anyio.sleep(step_s)


def test_public_names_are_exactly_the_intended_ones() -> None:
    assert sorted(emulator_pkg.__all__) == sorted(
        [
            "EmulatedEndpoint",
            "EmulatedJob",
            "EmulatedWorker",
            "Emulator",
            "EmulatorConfig",
            "EmulatorProxyRouting",
            "EndpointConfig",
            "EndpointFaults",
            "LedgerEntry",
            "PolicyLimits",
            "RateLimits",
            "WebhookCall",
            "WorkerState",
        ]
    )


def test_endpoint_config_refuses_impossible_values() -> None:
    with pytest.raises(ValueError, match="min_workers"):
        EndpointConfig(min_workers=4, max_workers=3)
    with pytest.raises(ValueError, match="protocol"):
        EndpointConfig(protocol="v3")  # type: ignore[arg-type]


def test_faults_refuse_unknown_routes() -> None:
    with pytest.raises(ValueError, match="route"):
        EndpointFaults().http_status("job-take", 500)


async def test_base_url_is_the_v2_root_on_loopback(anyio_backend: object) -> None:
    async with Emulator() as emulator:
        assert emulator.base_url.startswith("http://127.0.0.1:")
        assert emulator.base_url.endswith("/v2")
    with pytest.raises(RuntimeError):
        _ = emulator.base_url


@pytest.mark.parametrize("auth", ["Bearer test-key", "test-key", "bearer test-key"])
async def test_bearer_and_raw_keys_are_accepted(anyio_backend: object, auth: str) -> None:
    async with emulated() as (api, _):
        status, _, _ = await api.call("GET", "health", auth=auth)
    assert status == 200


@pytest.mark.parametrize("auth", [None, "Bearer other-key", "Bearer "])
async def test_missing_or_unknown_key_gets_401_json(
    anyio_backend: object, auth: str | None
) -> None:
    async with emulated() as (api, endpoint):
        status, body, _ = await api.call("POST", "run", {"input": {}}, auth=auth)
    assert status == 401
    assert isinstance(body["error"], str)
    assert endpoint.jobs == {}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "run"),
        ("POST", "runsync"),
        ("GET", "status/x-u1"),
        ("GET", "stream/x-u1"),
        ("POST", "cancel/x-u1"),
        ("GET", "health"),
        ("POST", "purge-queue"),
    ],
)
async def test_unknown_endpoint_gets_404_on_every_route(
    anyio_backend: object, method: str, path: str
) -> None:
    async with emulated() as (api, _):
        status, body, _ = await api.call(method, path, {"input": {}}, endpoint="nope")
    assert status == 404
    assert "error" in body


@pytest.mark.parametrize(
    ("method", "route"),
    [("GET", "status"), ("POST", "status"), ("GET", "stream"), ("POST", "cancel")],
)
async def test_unknown_job_gets_404(anyio_backend: object, method: str, route: str) -> None:
    async with emulated() as (api, _):
        status, body, _ = await api.call(method, f"{route}/no-such-job-u1")
    assert status == 404
    assert "error" in body


@pytest.mark.parametrize(
    "raw", [b"not json", b"[]", b'{"inputs": {}}', b'{"input": {}, "policy": 3}']
)
async def test_bad_bodies_get_400(anyio_backend: object, raw: bytes) -> None:
    async with emulated() as (api, endpoint):
        for route in ("run", "runsync"):
            status, body, _ = await api.call("POST", route, raw=raw)
            assert status == 400
            assert "error" in body
    assert endpoint.jobs == {}


async def test_run_answers_at_once_with_a_unique_queued_id(anyio_backend: object) -> None:
    async with emulated(EndpointConfig(cold_start_s=60.0)) as (api, _):
        started = anyio.current_time()
        first = await api.ok("POST", "run", {"input": {"action": "wakeup"}})
        second = await api.ok("POST", "run", {"input": {"action": "wakeup"}})
        elapsed = anyio.current_time() - started
    assert first["status"] == "IN_QUEUE"
    assert set(first) == {"id", "status"}
    assert first["id"] != second["id"]
    assert first["id"].endswith("-u1")
    assert elapsed < 0.5


async def test_status_moves_through_the_lifecycle_with_integer_ms_fields(
    anyio_backend: object,
) -> None:
    async with emulated(EndpointConfig(min_workers=1, cold_start_s=10.0)) as (api, endpoint):
        job_id = (await api.ok("POST", "run", {"input": {"action": "keepalive", "duration": 20}}))[
            "id"
        ]
        queued = await api.ok("GET", f"status/{job_id}")
        await until(lambda: endpoint.jobs[job_id].status == "IN_PROGRESS", step_s=0.1)
        await anyio.sleep(5)
        running = await api.ok("POST", f"status/{job_id}")
        await until(lambda: endpoint.jobs[job_id].status == "COMPLETED")
        done = await api.ok("GET", f"status/{job_id}")
    assert queued == {"id": job_id, "status": "IN_QUEUE"}
    assert running["status"] == "IN_PROGRESS"
    assert "output" not in running
    assert running["workerId"] == endpoint.workers[0].id
    assert 4900 <= running["executionTime"] <= 5200
    assert done["status"] == "COMPLETED"
    assert isinstance(done["delayTime"], int)
    assert 9900 <= done["delayTime"] <= 10200  # waited for the min worker's boot
    assert 19900 <= done["executionTime"] <= 20200
    assert done["output"]["pings"] == 1  # default interval 30 s > duration 20 s
    assert done["output"]["duration"] == 20


async def test_runsync_returns_the_terminal_object_when_done_in_time(
    anyio_backend: object,
) -> None:
    async with emulated() as (api, endpoint):
        await until(lambda: endpoint.health()["workers"]["idle"] == 1)
        job = await api.ok("POST", "runsync?wait=2000", {"input": {"action": "health"}})
    assert job["id"].startswith("sync-")
    assert job["status"] == "COMPLETED"
    assert job["output"] == {
        "healthy": True,
        "public_url": endpoint.workers[0].public_url,
        "worker_id": endpoint.workers[0].id,
    }


@pytest.mark.parametrize(("wait", "expected_s"), [("5000", 5.0), ("10", 1.0), (None, 90.0)])
async def test_runsync_returns_the_current_object_when_the_wait_runs_out(
    anyio_backend: object, wait: str | None, expected_s: float
) -> None:
    async with emulated(EndpointConfig(cold_start_s=200.0)) as (api, endpoint):
        started = anyio.current_time()
        path = "runsync" if wait is None else f"runsync?wait={wait}"
        job = await api.ok("POST", path, {"input": {"action": "wakeup"}})
        waited = anyio.current_time() - started
        assert job["status"] == "IN_QUEUE"
        await until(lambda: endpoint.jobs[job["id"]].status == "COMPLETED")  # it keeps going
    assert expected_s <= waited < expected_s + 0.5


async def test_runsync_wait_is_clamped_to_300_s(anyio_backend: object) -> None:
    async with emulated(EndpointConfig(cold_start_s=float("inf"))) as (api, _):
        started = anyio.current_time()
        job = await api.ok("POST", "runsync?wait=999999", {"input": {}})
        waited = anyio.current_time() - started
    assert job["status"] == "IN_QUEUE"
    assert 300.0 <= waited < 300.5


async def test_stream_is_a_cursor(anyio_backend: object) -> None:
    async with emulated() as (api, endpoint):
        job_id = (await api.ok("POST", "run", {"input": {"action": "keepalive", "duration": 5}}))[
            "id"
        ]
        endpoint.emit_stream(job_id, {"n": 1})
        endpoint.emit_stream(job_id, {"n": 2})
        first = await api.ok("GET", f"stream/{job_id}")
        empty = await api.ok("POST", f"stream/{job_id}")
        endpoint.emit_stream(job_id, {"n": 3})
        third = await api.ok("GET", f"stream/{job_id}")
        await until(lambda: endpoint.jobs[job_id].status == "COMPLETED")
        drained = await api.ok("GET", f"stream/{job_id}")
    assert first == {"status": "IN_QUEUE", "stream": [{"output": {"n": 1}}, {"output": {"n": 2}}]}
    assert empty["stream"] == []
    assert third["stream"] == [{"output": {"n": 3}}]
    assert drained == {"status": "COMPLETED", "stream": []}


async def test_cancel_a_queued_job_and_no_worker_ever_takes_it(anyio_backend: object) -> None:
    async with emulated(EndpointConfig(cold_start_s=10.0)) as (api, endpoint):
        job_id = (await api.ok("POST", "run", {"input": {"action": "wakeup"}}))["id"]
        cancelled = await api.ok("POST", f"cancel/{job_id}")
        await anyio.sleep(60)
        later = await api.ok("GET", f"status/{job_id}")
        again = await api.ok("POST", f"cancel/{job_id}")
    assert cancelled == {"id": job_id, "status": "CANCELLED"}
    assert later == {"id": job_id, "status": "CANCELLED"}
    assert again["status"] == "CANCELLED"
    assert endpoint.jobs[job_id].worker_id is None
    assert endpoint.workers == []  # nothing was waiting, so nothing started


async def test_cancel_on_a_terminal_job_answers_its_status(anyio_backend: object) -> None:
    async with emulated() as (api, endpoint):
        job_id = (await api.ok("POST", "run", {"input": {"action": "health"}}))["id"]
        await until(lambda: endpoint.jobs[job_id].status == "COMPLETED")
        answer = await api.ok("POST", f"cancel/{job_id}")
    assert answer["status"] == "COMPLETED"


async def test_purge_removes_only_queued_jobs(anyio_backend: object) -> None:
    async with emulated(EndpointConfig(min_workers=1, max_workers=1, cold_start_s=5.0)) as (
        api,
        endpoint,
    ):
        running = (await api.ok("POST", "run", {"input": {"action": "keepalive", "duration": 60}}))[
            "id"
        ]
        await until(lambda: endpoint.jobs[running].status == "IN_PROGRESS")
        queued = [(await api.ok("POST", "run", {"input": {}}))["id"] for _ in range(2)]
        purged = await api.ok("POST", "purge-queue")
        status, _, _ = await api.call("GET", f"status/{queued[0]}")
        still = await api.ok("GET", f"status/{running}")
    assert purged == {"removed": 2, "status": "completed"}
    assert status == 404
    assert still["status"] == "IN_PROGRESS"


async def test_health_has_every_key_and_agrees_with_the_state(anyio_backend: object) -> None:
    config = EndpointConfig(min_workers=1, max_workers=1, cold_start_s=5.0)
    async with emulated(config) as (api, endpoint):
        booting = await api.ok("GET", "health")
        ok = (await api.ok("POST", "run", {"input": {"action": "health"}}))["id"]
        bad = (await api.ok("POST", "run", {"input": {"action": "dance"}}))["id"]
        await until(lambda: endpoint.jobs[bad].state.is_terminal)
        long = (await api.ok("POST", "run", {"input": {"action": "keepalive", "duration": 99}}))[
            "id"
        ]
        await until(lambda: endpoint.jobs[long].status == "IN_PROGRESS")
        await api.ok("POST", "run", {"input": {}})
        busy = await api.ok("GET", "health")
        assert busy == endpoint.health()
    assert booting == {
        "jobs": {"completed": 0, "failed": 0, "inProgress": 0, "inQueue": 0, "retried": 0},
        "workers": {
            "idle": 0,
            "initializing": 1,
            "ready": 0,
            "running": 0,
            "throttled": 0,
            "unhealthy": 0,
        },
    }
    assert endpoint.jobs[ok].status == "COMPLETED"
    assert busy["jobs"] == {
        "completed": 1,
        "failed": 1,
        "inProgress": 1,
        "inQueue": 1,
        "retried": 0,
    }
    assert busy["workers"]["running"] == 1
    assert busy["workers"]["initializing"] == 0


async def test_injected_status_with_retry_after(anyio_backend: object) -> None:
    async with emulated() as (api, endpoint):
        endpoint.faults.http_status("health", 429, times=2, retry_after=7)
        first = await api.call("GET", "health")
        second = await api.call("GET", "health")
        third = await api.call("GET", "health")
    assert [first[0], second[0], third[0]] == [429, 429, 200]
    assert first[2]["Retry-After"] == "7"
    assert "error" in first[1]
    assert endpoint.api_calls == [("GET", "health", s) for s in (429, 429, 200)]


async def test_oversized_run_body_gets_413(anyio_backend: object) -> None:
    async with emulated() as (api, endpoint):
        blob = b'{"input": {"blob": "' + b"x" * (11 * 2**20) + b'"}}'
        status, _, _ = await api.call("POST", "run", raw=blob)
    assert status == 413
    assert endpoint.jobs == {}


# -- the v1 handler's actions (worker-protocols.md) ----------------------------------------


async def run_v1(job_input: dict[str, Any]) -> tuple[dict[str, Any], EmulatedEndpoint]:
    async with emulated() as (api, endpoint):
        job_id = (await api.ok("POST", "run", {"input": job_input}))["id"]
        await until(lambda: endpoint.jobs[job_id].state.is_terminal)
        return await api.ok("GET", f"status/{job_id}"), endpoint


async def test_wakeup_without_action_returns_url_session_and_worker(
    anyio_backend: object,
) -> None:
    job, endpoint = await run_v1({})
    worker = endpoint.workers[0]
    assert job["status"] == "COMPLETED"
    assert job["output"] == {
        "success": True,
        "public_url": worker.public_url,
        "session_id": worker.session_id,
        "version": job["output"]["version"],
        "worker_id": worker.id,
    }
    assert worker.session_id


async def test_ready_and_shutdown_outputs(anyio_backend: object) -> None:
    ready, endpoint = await run_v1({"action": "ready"})
    shutdown, _ = await run_v1({"action": "shutdown"})
    assert ready["output"]["ready"] is True
    assert ready["output"]["worker_id"] == endpoint.workers[0].id
    assert shutdown["output"]["success"] is True
    assert shutdown["output"]["message"] == "Shutdown acknowledged"


async def test_shutdown_stops_nothing(anyio_backend: object) -> None:
    async with emulated() as (api, endpoint):
        job_id = (await api.ok("POST", "run", {"input": {"action": "shutdown"}}))["id"]
        await until(lambda: endpoint.jobs[job_id].status == "COMPLETED")
        assert endpoint.workers[0].state == "idle"


async def test_unknown_action_fails_the_job_with_its_error(anyio_backend: object) -> None:
    job, _ = await run_v1({"action": "lease"})
    assert job["status"] == "FAILED"
    assert job["error"] == "Unknown action: lease"
    assert "output" not in job


@pytest.mark.parametrize("duration", [0, -5])
async def test_keepalive_needs_a_positive_duration(anyio_backend: object, duration: int) -> None:
    job, _ = await run_v1({"action": "keepalive", "duration": duration})
    assert job["status"] == "FAILED"
    assert job["error"] == "duration must be positive"


async def test_keepalive_blocks_for_its_duration_and_counts_pings(anyio_backend: object) -> None:
    job, endpoint = await run_v1({"action": "keepalive", "duration": 95, "interval": 30})
    assert job["status"] == "COMPLETED"
    assert 94_900 <= job["executionTime"] <= 95_200
    assert job["output"] == {
        "success": True,
        "public_url": endpoint.workers[0].public_url,
        "worker_id": endpoint.workers[0].id,
        "pings": 4,
        "failures": 0,
        "duration": 95,
        "interval": 30,
    }


def test_a_handler_exception_fails_the_job_with_a_json_error_string() -> None:
    outcome = outcome_of_exception(ValueError("boom"), worker_id="w1")
    error = json.loads(outcome.error or "")
    assert outcome.status == "FAILED"
    assert error["error_message"] == "boom"
    assert error["worker_id"] == "w1"
    assert {"error_type", "error_traceback", "hostname", "runpod_version"} <= set(error)


def test_a_returned_error_dict_fails_the_job_and_keeps_the_rest_as_output() -> None:
    failed = outcome_of_value({"success": False, "error": "nope"})
    plain = outcome_of_value({"success": True})
    assert (failed.status, failed.error, failed.output) == ("FAILED", "nope", {"success": False})
    assert (plain.status, plain.output, plain.error) == ("COMPLETED", {"success": True}, None)

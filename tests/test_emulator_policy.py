"""Job routes and policy fields (runpod-api.md §2.1-§2.7; §8 items 10, 11, 13, 15, 16)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import anyio
import pytest
from support import until

from orchestrator.emulator import EmulatedEndpoint, Emulator, EmulatorConfig, EndpointConfig
from orchestrator.errors import RunPodBadRequestError
from orchestrator.runpod import JobPolicy, RunPodClient
from orchestrator.secrets import Secret

pytestmark = pytest.mark.anyio

WARM = EndpointConfig(min_workers=1, max_workers=1, cold_start_s=5.0)


class Api:
    def __init__(self, session: aiohttp.ClientSession, emulator: Emulator) -> None:
        self.session = session
        self.base = f"{emulator.base_url}/ep"

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": "Bearer test-key"}
        async with self.session.request(
            method, f"{self.base}/{path}", json=body, headers=headers
        ) as response:
            return response.status, await response.json()

    async def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, payload = await self.call(method, path, body)
        assert status == 200, payload
        return payload


@asynccontextmanager
async def emulated(config: EndpointConfig = WARM) -> AsyncIterator[tuple[Api, EmulatedEndpoint]]:
    no_total = aiohttp.ClientTimeout(total=None)
    async with (
        Emulator(EmulatorConfig(endpoints={"ep": config})) as emulator,
        aiohttp.ClientSession(timeout=no_total) as session,
    ):
        yield Api(session, emulator), emulator.endpoint("ep")


async def failed_job(api: Api, endpoint: EmulatedEndpoint) -> str:
    job_id: str = (await api.ok("POST", "run", {"input": {"action": "dance"}}))["id"]
    await until(lambda: endpoint.jobs[job_id].status == "FAILED")
    return job_id


# -- /retry ---------------------------------------------------------------------------------


async def test_retry_requeues_a_failed_job_under_its_id_with_output_cleared(
    anyio_backend: object,
) -> None:
    async with emulated(EndpointConfig(min_workers=1, max_workers=1, cold_start_s=5.0)) as (
        api,
        endpoint,
    ):
        job_id = await failed_job(api, endpoint)
        # a busy worker keeps the retried job queued long enough to look at it
        busy = await api.ok("POST", "run", {"input": {"action": "keepalive", "duration": 30}})
        await until(lambda: endpoint.jobs[busy["id"]].status == "IN_PROGRESS")
        answer = await api.ok("POST", f"retry/{job_id}")
        queued = await api.ok("GET", f"status/{job_id}")
        health = endpoint.health()
        await until(lambda: endpoint.jobs[job_id].state.is_terminal)
    assert answer == {"id": job_id, "status": "IN_QUEUE"}
    assert queued["status"] == "IN_QUEUE"
    assert "error" not in queued
    assert "output" not in queued
    assert "workerId" not in queued
    assert health["jobs"]["retried"] == 1
    assert endpoint.jobs[job_id].status == "FAILED"  # same input, same handler answer


async def test_retry_requeues_a_timed_out_job(anyio_backend: object) -> None:
    async with emulated() as (api, endpoint):
        body = {
            "input": {"action": "keepalive", "duration": 60},
            "policy": {"executionTimeout": 5000},
        }
        job_id = (await api.ok("POST", "run", body))["id"]
        await until(lambda: endpoint.jobs[job_id].status == "TIMED_OUT")
        answer = await api.ok("POST", f"retry/{job_id}")
    assert answer == {"id": job_id, "status": "IN_QUEUE"}


@pytest.mark.parametrize("action", ["health", "keepalive"])
async def test_retry_in_any_other_state_gets_400(anyio_backend: object, action: str) -> None:
    async with emulated() as (api, endpoint):
        job_id = (await api.ok("POST", "run", {"input": {"action": action, "duration": 60}}))["id"]
        await until(lambda: endpoint.jobs[job_id].status in ("COMPLETED", "IN_PROGRESS"))
        status, body = await api.call("POST", f"retry/{job_id}")
        unknown, _ = await api.call("POST", "retry/nope-u1")
    assert status == 400
    assert "error" in body
    assert unknown == 404


# -- ttl and retention ----------------------------------------------------------------------


@pytest.mark.parametrize("action", ["keepalive", "wakeup"])
async def test_a_job_older_than_its_ttl_is_deleted_in_any_state(
    anyio_backend: object, action: str
) -> None:
    config = EndpointConfig(min_workers=1, max_workers=1, cold_start_s=30.0)
    async with emulated(config) as (api, endpoint):
        body = {"input": {"action": action, "duration": 100}, "policy": {"ttl": 40_000}}
        job_id = (await api.ok("POST", "run", body))["id"]
        await anyio.sleep(39)
        before = await api.ok("GET", f"status/{job_id}")
        await anyio.sleep(2)
        status, _ = await api.call("GET", f"status/{job_id}")
    assert before["status"] == ("IN_PROGRESS" if action == "keepalive" else "COMPLETED")
    assert status == 404
    assert job_id not in endpoint.jobs


async def test_a_queued_job_past_its_ttl_is_never_taken(anyio_backend: object) -> None:
    async with emulated(EndpointConfig(cold_start_s=60.0, queue_delay_s=0.0)) as (api, endpoint):
        job_id = (await api.ok("POST", "run", {"input": {}, "policy": {"ttl": 10_000}}))["id"]
        await anyio.sleep(11)
        status, _ = await api.call("GET", f"status/{job_id}")
        assert status == 404
        await until(lambda: endpoint.health()["workers"]["idle"] == 1)
        await anyio.sleep(1)
    assert endpoint.health()["jobs"]["inQueue"] == 0


async def test_a_bad_ttl_gets_400(anyio_backend: object) -> None:
    async with emulated() as (api, _):
        status, _ = await api.call("POST", "run", {"input": {}, "policy": {"ttl": "soon"}})
    assert status == 400


WEEK_MS = 7 * 24 * 3600 * 1000


@pytest.mark.parametrize("route", ["run", "runsync"])
@pytest.mark.parametrize(
    ("policy", "refused"),
    [
        ({"executionTimeout": 1_000}, "policy.executionTimeout must be between 5000 and"),
        ({"executionTimeout": 4_999}, "policy.executionTimeout must be between 5000 and"),
        ({"executionTimeout": 700_000_000}, f"and {WEEK_MS} ms, got 700000000"),
        ({"ttl": 1_000}, "policy.ttl must be between 10000 and"),
        ({"ttl": WEEK_MS + 1}, f"policy.ttl must be between 10000 and {WEEK_MS} ms"),
    ],
)
async def test_a_policy_outside_runpods_documented_limits_gets_400_and_no_job(
    anyio_backend: object, route: str, policy: dict[str, int], refused: str
) -> None:
    # RunPod: executionTimeout 5 s - 7 days, ttl 10 s - 7 days (specs/runpod-api.md §2.1)
    async with emulated() as (api, endpoint):
        status, answer = await api.call("POST", route, {"input": {}, "policy": policy})
    assert status == 400
    assert refused in answer["error"]
    assert endpoint.jobs == {}


async def test_the_limits_themselves_are_accepted(anyio_backend: object) -> None:
    async with emulated() as (api, endpoint):
        for policy in (
            {"executionTimeout": 5_000, "ttl": 10_000},
            {"executionTimeout": WEEK_MS, "ttl": WEEK_MS},
        ):
            await api.ok("POST", "run", {"input": {"action": "health"}, "policy": policy})
    assert len(endpoint.jobs) == 2


async def test_the_runpod_client_sees_a_refused_policy_as_a_bad_request(
    anyio_backend: object,
) -> None:
    async with emulated() as (api, _), aiohttp.ClientSession() as session:
        client = RunPodClient(
            session, "ep", Secret("test-key"), base_url=api.base.rsplit("/", 1)[0]
        )
        with pytest.raises(RunPodBadRequestError) as refused:
            await client.run({"action": "health"}, policy=JobPolicy(execution_timeout_ms=1_000))
    assert (refused.value.status, refused.value.retryable) == (400, False)


@pytest.mark.parametrize(("route", "retention_s"), [("run", 1800.0), ("runsync", 60.0)])
async def test_completed_results_are_kept_for_the_default_retention(
    anyio_backend: object, route: str, retention_s: float
) -> None:
    async with emulated() as (api, endpoint):
        job_id = (await api.ok("POST", route, {"input": {"action": "health"}}))["id"]
        await until(lambda: endpoint.jobs[job_id].status == "COMPLETED")
        await anyio.sleep(retention_s - 1)
        kept = await api.ok("GET", f"status/{job_id}")
        await anyio.sleep(2)
        status, _ = await api.call("GET", f"status/{job_id}")
    assert kept["status"] == "COMPLETED"
    assert status == 404


async def test_retention_is_configurable(anyio_backend: object) -> None:
    config = EndpointConfig(min_workers=1, cold_start_s=1.0, run_retention_s=5.0)
    async with emulated(config) as (api, endpoint):
        job_id = await failed_job(api, endpoint)
        await anyio.sleep(6)
        status, _ = await api.call("POST", f"retry/{job_id}")
    assert status == 404  # past retention a job can no longer be retried


# -- /status-sync and /stream long-polls ----------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_status_sync_answers_when_the_job_ends(anyio_backend: object, method: str) -> None:
    async with emulated() as (api, _):
        job_id = (await api.ok("POST", "run", {"input": {"action": "keepalive", "duration": 20}}))[
            "id"
        ]
        started = anyio.current_time()
        done = await api.ok(method, f"status-sync/{job_id}?wait=60000")
        waited = anyio.current_time() - started
    assert done["status"] == "COMPLETED"
    assert 20 <= waited < 27  # boot (5 s) + keepalive (20 s), not the full wait


async def test_status_sync_answers_the_current_object_when_the_wait_runs_out(
    anyio_backend: object,
) -> None:
    async with emulated() as (api, _):
        job_id = (await api.ok("POST", "run", {"input": {"action": "keepalive", "duration": 99}}))[
            "id"
        ]
        started = anyio.current_time()
        job = await api.ok("GET", f"status-sync/{job_id}?wait=8000")
        waited = anyio.current_time() - started
        unknown, _ = await api.call("GET", "status-sync/nope-u1?wait=1000")
    assert job["status"] == "IN_PROGRESS"
    assert 8.0 <= waited < 8.5
    assert unknown == 404


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_stream_wait_long_polls_until_a_chunk_arrives(
    anyio_backend: object, method: str
) -> None:
    async with emulated() as (api, endpoint):
        job_id = (await api.ok("POST", "run", {"input": {"action": "keepalive", "duration": 60}}))[
            "id"
        ]

        async def emit_later() -> None:
            await anyio.sleep(7)
            endpoint.emit_stream(job_id, {"n": 1})

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(emit_later)
            started = anyio.current_time()
            got = await api.ok(method, f"stream/{job_id}?wait=30000")
            waited = anyio.current_time() - started
        nothing = await api.ok(method, f"stream/{job_id}?wait=2000")
    assert got["stream"] == [{"output": {"n": 1}}]
    assert 7.0 <= waited < 7.5
    assert nothing["stream"] == []


async def test_stream_without_wait_answers_at_once(anyio_backend: object) -> None:
    async with emulated() as (api, _):
        job_id = (await api.ok("POST", "run", {"input": {"action": "keepalive", "duration": 60}}))[
            "id"
        ]
        started = anyio.current_time()
        got = await api.ok("GET", f"stream/{job_id}")
    assert got["stream"] == []
    assert anyio.current_time() - started < 0.5


# -- progress updates -----------------------------------------------------------------------


async def test_a_progress_update_shows_as_output_while_in_progress(anyio_backend: object) -> None:
    async with emulated() as (api, endpoint):
        job_id = (await api.ok("POST", "run", {"input": {"action": "keepalive", "duration": 30}}))[
            "id"
        ]
        await until(lambda: endpoint.jobs[job_id].status == "IN_PROGRESS")
        before = await api.ok("GET", f"status/{job_id}")
        endpoint.report_progress(job_id, {"percent": 40})
        during = await api.ok("GET", f"status/{job_id}")
        await until(lambda: endpoint.jobs[job_id].status == "COMPLETED")
        endpoint.report_progress(job_id, {"percent": 99})  # late: ignored
        after = await api.ok("GET", f"status/{job_id}")
    assert "output" not in before
    assert during["status"] == "IN_PROGRESS"
    assert during["output"] == {"percent": 40}
    assert after["status"] == "COMPLETED"
    assert after["output"]["success"] is True

"""Fault injection on the emulated RunPod API and its workers (specs/runpod-api.md §7)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import anyio
import pytest
from support import until

from orchestrator.emulator import EmulatedEndpoint, Emulator, EmulatorConfig, EndpointConfig

pytestmark = pytest.mark.anyio

WARM = EndpointConfig(min_workers=1, cold_start_s=5.0)


@asynccontextmanager
async def emulated(
    config: EndpointConfig = WARM,
) -> AsyncIterator[tuple[aiohttp.ClientSession, str, EmulatedEndpoint]]:
    async with (
        Emulator(EmulatorConfig(endpoints={"ep": config})) as emulator,
        aiohttp.ClientSession(headers={"Authorization": "test-key"}) as session,
    ):
        yield session, f"{emulator.base_url}/ep", emulator.endpoint("ep")


async def post_run(session: aiohttp.ClientSession, base: str, body: Any) -> str:
    async with session.post(f"{base}/run", json=body) as response:
        assert response.status == 200
        job_id: str = (await response.json())["id"]
        return job_id


def test_route_faults_refuse_unknown_routes_and_bad_values() -> None:
    from orchestrator.emulator import EndpointFaults

    faults = EndpointFaults()
    with pytest.raises(ValueError, match="route"):
        faults.latency("job-take", 1.0)
    with pytest.raises(ValueError, match="seconds"):
        faults.latency("run", -1.0)
    with pytest.raises(ValueError, match="times"):
        faults.drop_connection("run", times=0)


async def test_latency_delays_then_serves(anyio_backend: object) -> None:
    async with emulated() as (session, base, endpoint):
        endpoint.faults.latency("health", 12.5)
        started = anyio.current_time()
        async with session.get(f"{base}/health") as slow:
            slow_status = slow.status
        slow_s = anyio.current_time() - started
        started = anyio.current_time()
        async with session.get(f"{base}/health") as fast:
            fast_status = fast.status
        fast_s = anyio.current_time() - started
    assert (slow_status, fast_status) == (200, 200)
    assert 12.5 <= slow_s < 13.0
    assert fast_s < 0.5


async def test_a_dropped_connection_gets_no_answer(anyio_backend: object) -> None:
    async with emulated() as (session, base, endpoint):
        endpoint.faults.drop_connection("run", times=1)
        with pytest.raises(aiohttp.ClientConnectionError):
            async with session.post(f"{base}/run", json={"input": {}}) as response:
                await response.read()
        dropped = dict(endpoint.jobs)
        job_id = await post_run(session, base, {"input": {}})
    assert dropped == {}  # dropped before it was served
    assert list(endpoint.jobs) == [job_id]  # only the scripted request was dropped


async def test_aiohttp_retries_a_dropped_get_once_so_two_drops_fail_it(
    anyio_backend: object,
) -> None:
    async with emulated() as (session, base, endpoint):
        endpoint.faults.drop_connection("status", times=2)
        with pytest.raises(aiohttp.ClientConnectionError):
            async with session.get(f"{base}/status/x-u1") as response:
                await response.read()
        async with session.get(f"{base}/status/x-u1") as response:
            after = response.status
    assert after == 404
    assert [call[2] for call in endpoint.api_calls] == [499, 499, 404]


async def test_a_malformed_body_is_truncated_json_but_the_request_took_effect(
    anyio_backend: object,
) -> None:
    async with emulated() as (session, base, endpoint):
        endpoint.faults.malformed_body("run")
        async with session.post(f"{base}/run", json={"input": {}}) as response:
            status = response.status
            text = await response.text()
    assert status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    assert text.startswith('{"id')
    assert len(endpoint.jobs) == 1  # the job was created; only its answer was lost


async def test_a_worker_dying_mid_job_fails_the_job_and_stops_its_swarm(
    anyio_backend: object,
) -> None:
    async with emulated() as (session, base, endpoint):
        endpoint.faults.worker_dies(after_s=7.0)
        job_id = await post_run(session, base, {"input": {"action": "keepalive", "duration": 60}})
        await until(lambda: endpoint.jobs[job_id].status == "IN_PROGRESS")
        started = anyio.current_time()
        worker = endpoint.workers[0]
        await until(lambda: endpoint.jobs[job_id].state.is_terminal)
        died_after_s = anyio.current_time() - started
        await anyio.sleep(1)
        job = endpoint.jobs[job_id]
        swarm_url = worker.swarm.base_url
        replacement = endpoint.workers[-1]  # min_workers=1 brings a new one
    assert job.status == "FAILED"
    assert job.error is not None and "died" in job.error
    assert 6.9 <= died_after_s <= 7.2
    assert worker.state == "stopped"
    assert swarm_url is None
    assert replacement is not worker


async def test_kill_worker_can_be_called_directly(anyio_backend: object) -> None:
    async with emulated() as (session, base, endpoint):
        job_id = await post_run(session, base, {"input": {"action": "keepalive", "duration": 60}})
        await until(lambda: endpoint.jobs[job_id].status == "IN_PROGRESS")
        endpoint.kill_worker(endpoint.workers[0].id, "spot host reclaimed")
        await anyio.sleep(0.1)
        job = endpoint.jobs[job_id]
        with pytest.raises(KeyError):
            endpoint.kill_worker("no-such-worker")
    assert job.status == "FAILED"
    assert "spot host reclaimed" in (job.error or "")


async def test_no_capacity_leaves_jobs_stuck_in_queue_until_restored(
    anyio_backend: object,
) -> None:
    config = EndpointConfig(cold_start_s=5.0, queue_delay_s=0.0)
    async with emulated(config) as (session, base, endpoint):
        endpoint.faults.host_capacity(0)
        job_id = await post_run(session, base, {"input": {}})
        await anyio.sleep(600)
        stuck = endpoint.jobs[job_id].status
        health = endpoint.health()
        endpoint.faults.clear()  # capacity back to the configured (unlimited)
        await until(lambda: endpoint.jobs[job_id].status == "COMPLETED")
    assert stuck == "IN_QUEUE"
    assert health["workers"]["throttled"] == 1
    assert health["jobs"]["inQueue"] == 1


async def test_http_status_still_works_on_the_new_routes(anyio_backend: object) -> None:
    async with emulated() as (session, base, endpoint):
        endpoint.faults.http_status("retry", 503)
        async with session.post(f"{base}/retry/x-u1") as response:
            status = response.status
    assert status == 503


async def test_a_per_worker_swarm_script_hits_only_that_worker() -> None:
    config = EndpointConfig(max_workers=2, scaler="request_count", cold_start_s=5.0)
    async with emulated(config) as (session, base, endpoint):
        endpoint.worker_swarm_faults(2).invalid_session(times=5)
        endpoint.swarm_faults.no_images(times=5)  # the shared script: worker 1 only, now
        for _ in range(2):
            await post_run(session, base, {"input": {"action": "keepalive", "duration": 60}})
        await until(lambda: len(endpoint.workers) == 2)
        first, second = endpoint.workers
        assert second.swarm.faults.pending("invalid_session") == 5
        assert second.swarm.faults.pending("no_images") == 0
        assert first.swarm.faults.pending("no_images") == 5
        assert first.swarm.faults.pending("invalid_session") == 0


def test_worker_ordinals_start_at_1() -> None:
    from orchestrator.emulator import EmulatedEndpoint

    with pytest.raises(ValueError, match="start at 1"):
        EmulatedEndpoint("ep", EndpointConfig()).worker_swarm_faults(0)

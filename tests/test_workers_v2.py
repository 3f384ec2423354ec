"""The v2 lease protocol, client side, against the emulator's v2 and v1 worker images."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import anyio
import pytest
from support import emulated, until

from orchestrator.emulator import EmulatedEndpoint, EndpointConfig, WorkerState
from orchestrator.errors import JobFailedError, ProtocolMismatchError, WorkerProtocolError
from orchestrator.runpod import JobStatus, RunPodClient
from orchestrator.secrets import Secret
from orchestrator.workers import LeaseTerms, V2Protocol

pytestmark = pytest.mark.anyio

TERMS = LeaseTerms(idle_seconds=60, startup_grace_seconds=120, max_lease_seconds=900)


@asynccontextmanager
async def leasing(config: EndpointConfig) -> AsyncIterator[tuple[EmulatedEndpoint, V2Protocol]]:
    async with emulated(config) as (emulator, endpoint), aiohttp.ClientSession() as session:
        client = RunPodClient(session, "ep", Secret("test-key"), base_url=emulator.base_url)
        yield endpoint, V2Protocol(client, poll_interval=1.0, terms=TERMS)


async def test_a_lease_hands_over_the_worker_url_and_its_bearer_token() -> None:
    seen: list[JobStatus] = []
    async with leasing(EndpointConfig(protocol="v2", cold_start_s=30)) as (endpoint, v2):
        job = await v2.request_lease()
        handle = await v2.wait_for_lease(job, watch=seen.append)
        (worker,) = endpoint.running_workers()
        assert handle.protocol == "v2"
        assert handle.hold_job_id == job.id
        assert handle.worker_id == worker.id
        assert handle.public_url == worker.public_url
        assert handle.authorization is not None
        async with aiohttp.ClientSession() as http:
            url = f"{handle.public_url}/API/GetNewSession"
            async with http.post(url, json={}) as refused:
                assert refused.status == 401
            headers = {"Authorization": handle.authorization.reveal()}
            async with http.post(url, json={}, headers=headers) as answer:
                assert answer.status == 200
    assert seen[0] is JobStatus.IN_QUEUE
    assert seen[-1] is JobStatus.IN_PROGRESS


async def test_the_lease_job_asks_for_the_terms_and_outlives_the_longest_lease() -> None:
    async with leasing(EndpointConfig(protocol="v2", cold_start_s=5)) as (endpoint, v2):
        job = await v2.request_lease()
        sent = endpoint.jobs[job.id]
        assert sent.input == {
            "action": "lease",
            "idle_seconds": 60,
            "startup_grace_seconds": 120,
            "max_lease_seconds": 900,
        }
        assert sent.policy["executionTimeout"] > 900_000


async def test_release_cancels_the_lease_and_stops_its_worker() -> None:
    async with leasing(EndpointConfig(protocol="v2", cold_start_s=5)) as (endpoint, v2):
        job = await v2.request_lease()
        await v2.wait_for_lease(job)
        assert await v2.release(job.id)
        assert endpoint.jobs[job.id].state is JobStatus.CANCELLED
        await until(lambda: not endpoint.running_workers())
        assert endpoint.workers[0].state is WorkerState.STOPPED


async def test_a_queued_lease_is_withdrawn_before_any_worker_starts() -> None:
    async with leasing(EndpointConfig(protocol="v2", queue_delay_s=4)) as (endpoint, v2):
        job = await v2.request_lease()
        assert await v2.release(job.id)
        await anyio.sleep(30)
        assert endpoint.workers == []
        assert endpoint.ledger_json()["total_billed_seconds"] == 0


async def test_a_v1_endpoint_is_detected_from_its_refusal() -> None:
    async with leasing(EndpointConfig(protocol="v1", cold_start_s=5)) as (_, v2):
        job = await v2.request_lease()
        with pytest.raises(ProtocolMismatchError) as caught:
            await v2.wait_for_lease(job)
    assert caught.value.detected == "v1"
    assert caught.value.job_id == job.id
    assert "WorkerProtocol" in str(caught.value)


async def test_a_refused_lease_is_a_job_failure_with_the_workers_reason() -> None:
    async with leasing(EndpointConfig(protocol="v2", cold_start_s=5)) as (endpoint, v2):
        endpoint.faults.lease_refused("GPU out of memory")
        job = await v2.request_lease()
        with pytest.raises(JobFailedError, match="GPU out of memory") as caught:
            await v2.wait_for_lease(job)
    assert not isinstance(caught.value, ProtocolMismatchError)


async def test_a_lease_that_never_streams_waits_until_the_callers_deadline() -> None:
    async with leasing(EndpointConfig(protocol="v2", cold_start_s=5)) as (endpoint, v2):
        endpoint.faults.lease_never_streams()
        job = await v2.request_lease()
        with anyio.move_on_after(300) as deadline:
            await v2.wait_for_lease(job)
        assert deadline.cancelled_caught
        assert await v2.release(job.id)


@pytest.mark.parametrize(
    "output",
    [
        "not an object",
        {"success": True, "protocol": 1, "public_url": "http://x", "token": "t", "worker_id": "w"},
        {"success": True, "protocol": 2, "token": "t", "worker_id": "w"},
        {"success": True, "protocol": 2, "public_url": "http://x", "worker_id": "w"},
    ],
)
async def test_an_output_that_is_no_v2_lease_is_a_protocol_error(output: object) -> None:
    async with leasing(EndpointConfig(protocol="v1", cold_start_s=5)) as (endpoint, v2):
        job = await v2.request_lease()
        endpoint.emit_stream(job.id, output)
        with pytest.raises(WorkerProtocolError, match=r"too old|not an object") as caught:
            await v2.wait_for_lease(job)
    assert not isinstance(caught.value, ProtocolMismatchError)


def test_lease_terms_must_be_positive_and_finite() -> None:
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="lease times"):
            LeaseTerms(idle_seconds=bad)

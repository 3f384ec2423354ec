"""RunPodClient against the real emulator on a local port: shapes, errors, retries, secrecy."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import anyio
import pytest
from aiohttp import web

import orchestrator.runpod as runpod_pkg
from orchestrator._retry import RetryPolicy
from orchestrator.emulator import Emulator, EmulatorConfig, EndpointConfig
from orchestrator.errors import (
    OrchestratorError,
    RunPodAuthError,
    RunPodNotFoundError,
    RunPodRateLimitError,
    RunPodServerError,
    TransportError,
)
from orchestrator.runpod import (
    ApiCall,
    Health,
    Job,
    JobPolicy,
    JobStatus,
    PurgeResult,
    RunPodClient,
    StreamChunk,
)
from orchestrator.runpod._calls import may_retry_status, may_retry_transport
from orchestrator.secrets import Secret

pytestmark = pytest.mark.anyio

KEY = "test-key"
WARM = EmulatorConfig(
    endpoints={"local-ep": EndpointConfig(min_workers=1, cold_start_s=10.0)}, api_keys=(KEY,)
)


@asynccontextmanager
async def connected(
    config: EmulatorConfig = WARM,
    *,
    key: str = KEY,
    calls: list[ApiCall] | None = None,
    retry: RetryPolicy = RetryPolicy(attempts=4, base_delay=0.5, max_delay=2.0),  # noqa: B008
) -> AsyncIterator[tuple[Emulator, RunPodClient]]:
    """An emulator and a client pointed at it (the session closes before the emulator stops)."""
    async with Emulator(config) as emulator, aiohttp.ClientSession() as session:
        client = RunPodClient(
            session,
            "local-ep",
            Secret(key),
            base_url=emulator.base_url,
            retry=retry,
            on_call=None if calls is None else calls.append,
        )
        yield emulator, client


async def finished(client: RunPodClient, job_id: str, *, within_s: float = 300.0) -> Job:
    """Poll /status once a second until the job is terminal."""
    with anyio.fail_after(within_s):
        while not (job := await client.status(job_id)).state.is_terminal:  # noqa: ASYNC110
            await anyio.sleep(1.0)
    return job


def test_public_names_are_exactly_the_intended_ones() -> None:
    assert sorted(runpod_pkg.__all__) == sorted(
        [
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
    )


def test_terminal_statuses() -> None:
    terminal = {s for s in JobStatus if s.is_terminal}
    assert terminal == {"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"}


def test_unknown_status_decodes_as_in_progress_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    job = Job(id="j", status="WARMING_UP")
    with caplog.at_level(logging.WARNING, logger="swarmpod.runpod"):
        assert job.state is JobStatus.IN_PROGRESS
        assert job.state is JobStatus.IN_PROGRESS
    assert [r.getMessage().count("WARMING_UP") for r in caplog.records] == [1]


async def test_run_then_status_reaches_completed_with_timings(anyio_backend: object) -> None:
    async with connected() as (_, client):
        queued = await client.run({"action": "wakeup"})
        assert queued.state is JobStatus.IN_QUEUE
        assert queued.id.endswith("-u1")
        done = await finished(client, queued.id)
    assert done.state is JobStatus.COMPLETED
    assert done.worker_id is not None
    assert done.output["worker_id"] == done.worker_id
    assert done.delay_time is not None
    assert done.delay_time >= 0
    assert done.execution_time is not None


async def test_policy_is_sent_in_ms(anyio_backend: object) -> None:
    async with connected() as (emulator, client):
        job = await client.run(
            {"action": "health"},
            policy=JobPolicy(execution_timeout_ms=700_000, low_priority=True),
            webhook="http://127.0.0.1:9/hook",
        )
        emulated = emulator.endpoint("local-ep").jobs[job.id]
    assert emulated.policy == {"executionTimeout": 700_000, "lowPriority": True}
    assert emulated.webhook == "http://127.0.0.1:9/hook"
    assert emulated.input == {"action": "health"}


async def test_runsync_returns_the_terminal_job_from_a_warm_worker(anyio_backend: object) -> None:
    async with connected() as (_, client):
        await anyio.sleep(11)  # the min worker is warm
        job = await client.runsync({"action": "health"}, wait_ms=5000)
    assert job.id.startswith("sync-")
    assert job.state is JobStatus.COMPLETED
    assert job.output["healthy"] is True


async def test_runsync_returns_the_queued_job_when_the_wait_runs_out(
    anyio_backend: object,
) -> None:
    cold = EmulatorConfig(endpoints={"local-ep": EndpointConfig(cold_start_s=120.0)})
    async with connected(cold) as (_, client):
        started = anyio.current_time()
        job = await client.runsync({"action": "wakeup"}, wait_ms=3000)
        waited = anyio.current_time() - started
    assert job.state is JobStatus.IN_QUEUE
    assert 3.0 <= waited < 3.5


async def test_runsync_refuses_a_wait_out_of_range(anyio_backend: object) -> None:
    async with connected() as (_, client):
        with pytest.raises(ValueError, match="wait_ms"):
            await client.runsync({}, wait_ms=500)


async def test_cancel_health_and_purge_shapes(anyio_backend: object) -> None:
    cold = EmulatorConfig(endpoints={"local-ep": EndpointConfig(cold_start_s=120.0)})
    async with connected(cold) as (_, client):
        first = await client.run({"action": "wakeup"})
        await client.run({"action": "wakeup"})
        await client.run({"action": "wakeup"})
        cancelled = await client.cancel(first.id)
        health = await client.health()
        purged = await client.purge_queue()
        after = await client.health()
    assert cancelled.state is JobStatus.CANCELLED
    assert isinstance(health, Health)
    assert health.jobs.in_queue == 2
    assert purged == PurgeResult(removed=2, status="completed")
    assert after.jobs.in_queue == 0


async def test_stream_returns_each_output_once(anyio_backend: object) -> None:
    async with connected() as (emulator, client):
        job = await client.run({"action": "health"}, policy=JobPolicy(low_priority=True))
        endpoint = emulator.endpoint("local-ep")
        endpoint.emit_stream(job.id, {"step": 1})
        endpoint.emit_stream(job.id, {"step": 2})
        first = await client.stream(job.id)
        second = await client.stream(job.id)
    assert isinstance(first, StreamChunk)
    assert first.outputs == [{"step": 1}, {"step": 2}]
    assert second.outputs == []


async def test_bad_key_raises_auth_error_after_exactly_one_call(anyio_backend: object) -> None:
    calls: list[ApiCall] = []
    async with connected(key="wrong-key", calls=calls) as (emulator, client):
        with pytest.raises(RunPodAuthError) as caught:
            await client.run({"action": "wakeup"})
        served = emulator.endpoint("local-ep").api_calls
    assert caught.value.status == 401
    assert caught.value.retryable is False
    assert [(c.route, c.status, c.attempt) for c in calls] == [("run", 401, 1)]
    assert served == [("POST", "run", 401)]


async def test_503_twice_then_success_takes_three_attempts(anyio_backend: object) -> None:
    calls: list[ApiCall] = []
    async with connected(calls=calls) as (emulator, client):
        emulator.endpoint("local-ep").faults.http_status("run", 503, times=2)
        job = await client.run({"action": "wakeup"})
    assert job.state is JobStatus.IN_QUEUE
    assert [(c.status, c.attempt) for c in calls] == [(503, 1), (503, 2), (200, 3)]
    assert calls[0].error == "HTTP 503"
    assert calls[2].error is None


async def test_429_waits_for_retry_after_on_the_loop_clock(anyio_backend: object) -> None:
    calls: list[ApiCall] = []
    async with connected(calls=calls) as (emulator, client):
        emulator.endpoint("local-ep").faults.http_status("health", 429, retry_after=7)
        started = anyio.current_time()
        await client.health()
        waited = anyio.current_time() - started
    assert [c.status for c in calls] == [429, 200]
    assert 7.0 <= waited < 7.5


async def test_429_too_long_to_wait_gives_up_with_the_hint(anyio_backend: object) -> None:
    async with connected() as (emulator, client):
        emulator.endpoint("local-ep").faults.http_status("status", 429, retry_after=600)
        with pytest.raises(RunPodRateLimitError) as caught:
            await client.status("whatever-u1")
    assert caught.value.retry_after == 600


async def test_run_is_not_retried_on_500(anyio_backend: object) -> None:
    calls: list[ApiCall] = []
    async with connected(calls=calls) as (emulator, client):
        emulator.endpoint("local-ep").faults.http_status("run", 500, times=3)
        with pytest.raises(RunPodServerError) as caught:
            await client.run({"action": "wakeup"})
        jobs = emulator.endpoint("local-ep").jobs
    assert caught.value.status == 500
    assert len(calls) == 1
    assert jobs == {}


async def test_status_is_retried_on_500_until_attempts_run_out(anyio_backend: object) -> None:
    calls: list[ApiCall] = []
    async with connected(calls=calls, retry=RetryPolicy(attempts=3, base_delay=0.1)) as (
        emulator,
        client,
    ):
        emulator.endpoint("local-ep").faults.http_status("status", 500, times=5)
        with pytest.raises(RunPodServerError):
            await client.status("whatever-u1")
    assert [c.attempt for c in calls] == [1, 2, 3]


async def test_unknown_job_raises_not_found(anyio_backend: object) -> None:
    async with connected() as (_, client):
        with pytest.raises(RunPodNotFoundError) as caught:
            await client.status("no-such-job-u1")
    assert caught.value.job_id == "no-such-job-u1"
    assert caught.value.status == 404


async def test_unknown_endpoint_raises_not_found(anyio_backend: object) -> None:
    async with Emulator(WARM) as emulator, aiohttp.ClientSession() as session:
        client = RunPodClient(session, "nope", Secret(KEY), base_url=emulator.base_url)
        with pytest.raises(RunPodNotFoundError):
            await client.health()


async def test_refused_connection_is_a_transport_error_after_retries(
    anyio_backend: object,
) -> None:
    calls: list[ApiCall] = []
    async with Emulator(WARM) as emulator:
        dead_url = emulator.base_url
    async with aiohttp.ClientSession() as session:
        client = RunPodClient(
            session,
            "local-ep",
            Secret(KEY),
            base_url=dead_url,
            retry=RetryPolicy(attempts=2, base_delay=0.1),
            on_call=calls.append,
        )
        with pytest.raises(TransportError) as caught:
            await client.run({"action": "wakeup"})  # nothing was sent: retrying is safe
    assert caught.value.retryable is True
    assert [c.status for c in calls] == [None, None]
    assert calls[0].error is not None


async def test_undecodable_2xx_body_is_a_transport_error_naming_the_route(
    anyio_backend: object,
) -> None:
    served: list[str] = []

    async def garbage(request: web.Request) -> web.Response:
        served.append("run")
        return web.Response(text="<html>proxy error</html>", content_type="text/html")

    async def wrong_shape(request: web.Request) -> web.Response:
        served.append("status")
        return web.json_response({"id": 5})

    app = web.Application()
    app.router.add_post("/v2/ep/run", garbage)
    app.router.add_get("/v2/ep/status/{job_id}", wrong_shape)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        async with aiohttp.ClientSession() as session:
            client = RunPodClient(
                session,
                "ep",
                Secret(KEY),
                base_url=f"http://127.0.0.1:{port}/v2",
                retry=RetryPolicy(attempts=3, base_delay=0.5, max_delay=2.0),
            )
            with pytest.raises(TransportError, match="/run ") as on_run:
                await client.run({"action": "wakeup"})
            with pytest.raises(TransportError, match="/status ") as on_status:
                await client.status("j-u1")
    finally:
        await runner.cleanup()
    assert on_run.value.retryable is False  # a job may exist: the caller must not resubmit
    assert on_status.value.retryable is True
    assert on_status.value.status == 200
    assert served == ["run", "status", "status", "status"]  # a read is asked again, a run never


async def test_a_status_body_truncated_once_is_read_again(anyio_backend: object) -> None:
    async with connected() as (emulator, client):
        job = await client.run({"action": "health"})
        emulator.endpoint("local-ep").faults.malformed_body("status", times=1)
        assert (await client.status(job.id)).id == job.id


async def test_planted_key_never_shows(
    anyio_backend: object, caplog: pytest.LogCaptureFixture
) -> None:
    planted = "rpa_PLANTED_SECRET_0123456789"
    config = EmulatorConfig(
        endpoints={"local-ep": EndpointConfig(min_workers=1, cold_start_s=1.0)},
        api_keys=(planted,),
    )
    texts: list[str] = []
    caplog.set_level(logging.DEBUG)
    async with connected(config, key=planted) as (emulator, client):
        texts.append(repr(client))
        texts.append(str(client))
        endpoint = emulator.endpoint("local-ep")
        endpoint.faults.http_status("health", 503, times=10)
        endpoint.faults.http_status("run", 429, times=2)
        job = await client.run({"action": "wakeup"}, policy=JobPolicy(low_priority=True))
        await client.status(job.id)
        for call in (client.health(), client.status("missing-u1")):
            with pytest.raises(OrchestratorError) as caught:
                await call
            texts += [str(caught.value), repr(caught.value), repr(caught.value.facts())]
    async with connected(config, key="wrong") as (_, client):
        with pytest.raises(OrchestratorError) as caught:
            await client.health()
        texts += [str(caught.value), repr(caught.value)]
    texts.append(caplog.text)
    assert "[RunPodApiClient]" in caplog.text
    assert all(planted not in text for text in texts)
    assert "local-ep" in repr(client)


async def test_runsync_default_wait_outlasts_the_request_timeout(anyio_backend: object) -> None:
    cold = EmulatorConfig(endpoints={"local-ep": EndpointConfig(cold_start_s=300.0)})
    async with Emulator(cold) as emulator, aiohttp.ClientSession() as session:
        client = RunPodClient(
            session, "local-ep", Secret(KEY), base_url=emulator.base_url, request_timeout=5.0
        )
        started = anyio.current_time()
        job = await client.runsync({"action": "wakeup"})  # the server holds it 90 s
        waited = anyio.current_time() - started
    assert job.state is JobStatus.IN_QUEUE
    assert 90.0 <= waited < 91.0


@pytest.mark.parametrize(
    ("route", "status", "retried"),
    [
        ("run", 500, False),
        ("run", 503, True),
        ("run", 429, True),
        ("runsync", 500, False),
        ("runsync", 502, True),
        ("status", 500, True),
        ("cancel", 500, True),
        ("purge-queue", 503, True),
    ],
)
def test_which_answers_are_retried(route: str, status: int, retried: bool) -> None:
    assert may_retry_status(route, status) is retried


def test_job_creating_routes_retry_transport_failures_only_when_nothing_was_sent() -> None:
    assert may_retry_transport("run", nothing_sent=True) is True
    assert may_retry_transport("run", nothing_sent=False) is False
    assert may_retry_transport("status", nothing_sent=False) is True

"""Emulated workers and scaling (runpod-api.md §4, §8 items 9, 12, 19-24; worker-protocols v1)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import anyio
import pytest
from support import emulated, run

from orchestrator.emulator import (
    EmulatedEndpoint,
    EmulatedJob,
    Emulator,
    EmulatorConfig,
    EndpointConfig,
    WorkerState,
)

pytestmark = pytest.mark.anyio


async def until(
    condition: Callable[[], bool], *, within_s: float = 900.0, step_s: float = 1.0
) -> None:
    """Wait (in loop time, checking every ``step_s``) until ``condition`` holds."""
    with anyio.fail_after(within_s):
        while not condition():  # noqa: ASYNC110 (state is plain attributes, no event to wait on)
            await anyio.sleep(step_s)


async def submit(emulator: Emulator, body: dict[str, Any]) -> EmulatedJob:
    """POST /run over HTTP and return the emulator's record of the job."""
    return emulator.endpoint("ep").jobs[await run(emulator, body)]


async def cancel(emulator: Emulator, job_id: str) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{emulator.base_url}/ep/cancel/{job_id}", headers={"Authorization": "test-key"}
        ) as response,
    ):
        assert response.status == 200
        answer: dict[str, Any] = await response.json()
        return answer


def states(endpoint: EmulatedEndpoint) -> list[WorkerState]:
    """The state of every worker the endpoint ever started, in start order."""
    return [worker.state for worker in endpoint.workers]


def delay_ms(job: EmulatedJob) -> int:
    assert job.started_at is not None
    return round((job.started_at - job.submitted_at) * 1000)


async def test_wakeup_completes_after_queue_delay_plus_cold_start(anyio_backend: object) -> None:
    async with emulated(EndpointConfig(queue_delay_s=4.0, cold_start_s=60.0)) as (emulator, ep):
        job = await submit(emulator, {"input": {"action": "wakeup"}})
        await anyio.sleep(3.9)
        assert ep.workers == []  # the queue-delay scaler has not fired yet
        await until(lambda: job.status == "COMPLETED")
        view = job.to_api(anyio.current_time())
    worker = ep.workers[0]
    assert 63_900 <= view["delayTime"] <= 64_300
    assert view["workerId"] == worker.id
    assert job.output["worker_id"] == worker.id
    assert job.output["public_url"] == worker.public_url
    assert worker.public_url is not None
    assert worker.public_url.startswith("http://127.0.0.1:")
    assert worker.flashboot is False


async def test_a_120_s_cold_start_runs_on_the_virtual_clock(anyio_backend: object) -> None:
    """Its wall-clock time is measured by ``make bench`` (benchmarks/virtual_time.py)."""
    async with emulated(EndpointConfig(cold_start_s=120.0)) as (emulator, _):
        job = await submit(emulator, {"input": {"action": "wakeup"}})
        await until(lambda: job.status == "COMPLETED")
    assert delay_ms(job) >= 124_000


async def test_cancel_stops_a_blocking_keepalive_and_its_worker_stays_warm(
    anyio_backend: object,
) -> None:
    # runpod SDK >= 1.10 (rp_scale): the stop channel cancels that job's task, not the worker.
    config = EndpointConfig(min_workers=0, cold_start_s=30.0, idle_timeout_s=5.0)
    async with emulated(config) as (emulator, ep):
        job = await submit(emulator, {"input": {"action": "keepalive", "duration": 300}})
        await until(lambda: job.status == "IN_PROGRESS")
        await anyio.sleep(100)
        assert job.status == "IN_PROGRESS"
        worker = ep.workers[0]
        assert states(ep) == [WorkerState.RUNNING]
        assert worker.current_job_id == job.id
        answer = await cancel(emulator, job.id)
        await anyio.sleep(1)
        assert states(ep) == [WorkerState.IDLE]
        assert worker.swarm.base_url is not None  # its SwarmUI is still up: warm
        next_job = await submit(emulator, {"input": {"action": "health"}})
        await until(lambda: next_job.status == "COMPLETED", step_s=0.1)
        assert next_job.worker_id == worker.id  # served warm, no boot
        await anyio.sleep(300)  # past the keepalive's end: no late result
    assert answer["status"] == "CANCELLED"
    assert job.status == "CANCELLED"
    assert job.output is None
    assert states(ep) == [WorkerState.STOPPED]  # idled out after the health job
    assert next_job.finished_at is not None
    assert worker.stopped_at == pytest.approx(next_job.finished_at + 5.0, abs=0.01)
    assert len(ep.workers) == 1


async def test_idle_timeout_stops_a_worker_and_a_job_within_it_reuses_the_worker(
    anyio_backend: object,
) -> None:
    config = EndpointConfig(idle_timeout_s=5.0, cold_start_s=20.0)
    async with emulated(config) as (emulator, ep):
        first = await submit(emulator, {"input": {"action": "wakeup"}})
        await until(lambda: first.status == "COMPLETED", step_s=0.1)
        await anyio.sleep(4.0)
        second = await submit(emulator, {"input": {"action": "keepalive", "duration": 10}})
        await until(lambda: second.status == "COMPLETED", step_s=0.1)
        assert second.worker_id == first.worker_id
        assert delay_ms(second) < 100
        await anyio.sleep(4.9)
        assert states(ep) == [WorkerState.IDLE]
        await anyio.sleep(0.2)
        assert states(ep) == [WorkerState.STOPPED]
        assert ep.health()["workers"]["idle"] == 0
        third = await submit(emulator, {"input": {"action": "wakeup"}})
        await until(lambda: third.status == "COMPLETED")
    assert third.worker_id != first.worker_id
    assert len(ep.workers) == 2


async def test_flashboot_revives_faster_after_a_worker_stopped(anyio_backend: object) -> None:
    config = EndpointConfig(idle_timeout_s=5.0, cold_start_s=60.0, flashboot_start_s=2.0)
    async with emulated(config) as (emulator, ep):
        first = await submit(emulator, {"input": {}})
        await until(lambda: first.status == "COMPLETED")
        await until(lambda: ep.running_workers() == [])
        second = await submit(emulator, {"input": {}})
        await until(lambda: second.status == "COMPLETED")
    assert ep.workers[1].flashboot is True
    assert 5_900 <= delay_ms(second) <= 6_300  # queue delay 4 s + FlashBoot 2 s
    assert delay_ms(first) >= 64_000


async def test_min_workers_start_with_the_emulator_and_never_idle_out(
    anyio_backend: object,
) -> None:
    async with emulated(EndpointConfig(min_workers=2, idle_timeout_s=5.0, cold_start_s=10.0)) as (
        _,
        ep,
    ):
        await anyio.sleep(0.1)
        assert [w.state for w in ep.workers] == [WorkerState.INITIALIZING] * 2
        await anyio.sleep(100)
        assert [w.state for w in ep.workers] == [WorkerState.IDLE] * 2
        assert ep.health()["workers"]["idle"] == 2


async def test_a_second_job_behind_a_keepalive_gets_a_second_worker(
    anyio_backend: object,
) -> None:
    async with emulated(EndpointConfig(max_workers=3, cold_start_s=60.0)) as (emulator, ep):
        hold = await submit(emulator, {"input": {"action": "keepalive", "duration": 3000}})
        await until(lambda: hold.status == "IN_PROGRESS")
        probe = await submit(emulator, {"input": {"action": "health"}})
        await until(lambda: probe.status == "COMPLETED")
    assert probe.output["worker_id"] != hold.worker_id
    assert 63_900 <= delay_ms(probe) <= 64_300
    assert len(ep.workers) == 2


async def test_with_one_max_worker_the_second_job_waits_for_the_first(
    anyio_backend: object,
) -> None:
    async with emulated(EndpointConfig(max_workers=1, cold_start_s=10.0)) as (emulator, ep):
        hold = await submit(emulator, {"input": {"action": "keepalive", "duration": 200}})
        await until(lambda: hold.status == "IN_PROGRESS")
        probe = await submit(emulator, {"input": {"action": "health"}})
        await anyio.sleep(150)
        assert probe.status == "IN_QUEUE"
        await until(lambda: probe.status == "COMPLETED")
    assert probe.worker_id == hold.worker_id
    assert len(ep.workers) == 1


async def test_max_workers_is_never_exceeded(anyio_backend: object) -> None:
    async with emulated(EndpointConfig(max_workers=2, cold_start_s=10.0)) as (emulator, ep):
        jobs = [
            await submit(emulator, {"input": {"action": "keepalive", "duration": 500}})
            for _ in range(5)
        ]
        await anyio.sleep(100)
        statuses = sorted(job.status for job in jobs)
        assert len(ep.workers) == 2
    assert statuses == ["IN_PROGRESS"] * 2 + ["IN_QUEUE"] * 3


async def test_low_priority_jobs_never_start_a_worker(anyio_backend: object) -> None:
    async with emulated(EndpointConfig(cold_start_s=10.0)) as (emulator, ep):
        job = await submit(
            emulator, {"input": {"action": "health"}, "policy": {"lowPriority": True}}
        )
        await anyio.sleep(300)
        assert job.status == "IN_QUEUE"
        assert ep.workers == []
        normal = await submit(emulator, {"input": {"action": "wakeup"}})
        await until(lambda: job.status == "COMPLETED")
    assert normal.status == "COMPLETED"
    assert normal.started_at is not None
    assert job.started_at is not None
    assert normal.started_at <= job.started_at  # normal priority is served first
    assert len(ep.workers) == 1


async def test_an_infinite_cold_start_keeps_jobs_in_queue(anyio_backend: object) -> None:
    config = EndpointConfig(cold_start_s=float("inf"), max_workers=1, init_timeout_s=float("inf"))
    async with emulated(config) as (emulator, ep):
        job = await submit(emulator, {"input": {"action": "wakeup"}})
        await anyio.sleep(3600)
        health = ep.health()
        assert job.status == "IN_QUEUE"
        assert [w.state for w in ep.workers] == [WorkerState.INITIALIZING]
    assert health["workers"]["initializing"] == 1
    assert health["jobs"]["inQueue"] == 1


async def test_a_crashing_boot_leaves_workers_unhealthy_and_jobs_queued(
    anyio_backend: object,
) -> None:
    config = EndpointConfig(boot_fails=True, max_workers=2, cold_start_s=30.0)
    async with emulated(config) as (emulator, ep):
        jobs = [await submit(emulator, {"input": {"action": "wakeup"}}) for _ in range(3)]
        await anyio.sleep(600)
        health = ep.health()
        assert all(job.status == "IN_QUEUE" for job in jobs)
        assert [w.state for w in ep.workers] == [WorkerState.UNHEALTHY] * 2
    assert health["workers"]["unhealthy"] == 2
    assert health["workers"]["idle"] == 0
    assert health["jobs"]["inQueue"] == 3


async def test_execution_timeout_times_out_the_job_and_stops_its_worker(
    anyio_backend: object,
) -> None:
    config = EndpointConfig(execution_timeout_s=600.0, cold_start_s=10.0)
    async with emulated(config) as (emulator, ep):
        job = await submit(emulator, {"input": {"action": "keepalive", "duration": 3600}})
        await until(lambda: job.status == "TIMED_OUT")
        assert job.started_at is not None
        assert job.finished_at is not None
        ran = job.finished_at - job.started_at
        await anyio.sleep(0.1)
        worker = ep.workers[0]
        assert worker.state is WorkerState.STOPPED
        assert worker.swarm.base_url is None
    assert 599.9 <= ran <= 600.2
    assert job.output is None


async def test_policy_execution_timeout_overrides_the_endpoint(anyio_backend: object) -> None:
    async with emulated(EndpointConfig(cold_start_s=10.0)) as (emulator, _):
        short = await submit(
            emulator,
            {
                "input": {"action": "keepalive", "duration": 60},
                "policy": {"executionTimeout": 5000},
            },
        )
        await until(lambda: short.state.is_terminal)
        long = await submit(
            emulator,
            {
                "input": {"action": "keepalive", "duration": 900},
                "policy": {"executionTimeout": 1_000_000},
            },
        )
        await until(lambda: long.state.is_terminal, within_s=1000)
    assert short.status == "TIMED_OUT"
    assert long.status == "COMPLETED"


async def test_stop_stops_every_worker_and_its_swarm(anyio_backend: object) -> None:
    config = EndpointConfig(min_workers=2, cold_start_s=5.0)
    emulator = Emulator(EmulatorConfig(endpoints={"ep": config}))
    await emulator.start()
    ep = emulator.endpoint("ep")
    job = await submit(emulator, {"input": {"action": "keepalive", "duration": 99}})
    await until(lambda: job.status == "IN_PROGRESS")
    swarms = [w.swarm for w in ep.workers]
    assert all(s.base_url is not None for s in swarms)
    await emulator.stop()
    await emulator.stop()  # idempotent
    assert ep.running_workers() == []
    assert all(s.base_url is None for s in swarms)

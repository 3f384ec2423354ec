"""Scaling and unhealthy workers (runpod-api.md §4.1-§4.5; §8 items 19, 21, 24)."""

from __future__ import annotations

import anyio
import pytest
from support import emulated, run, until

from orchestrator.emulator import (
    EndpointConfig,
    WorkerState,
)

pytestmark = pytest.mark.anyio


KEEPALIVE = {"input": {"action": "keepalive", "duration": 300}}


# -- request-count scaler -------------------------------------------------------------------


def test_scaler_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="scaler_value"):
        EndpointConfig(scaler="request_count", scaler_value=0)
    with pytest.raises(ValueError, match="scaler"):
        EndpointConfig(scaler="magic")  # type: ignore[arg-type]


@pytest.mark.parametrize(("n", "expected"), [(1, 3), (2, 2), (5, 1)])
async def test_request_count_targets_ceil_of_pending_over_n_at_once(
    anyio_backend: object, n: int, expected: int
) -> None:
    config = EndpointConfig(
        scaler="request_count", scaler_value=n, max_workers=5, cold_start_s=60.0
    )
    async with emulated(config) as (emulator, ep):
        for _ in range(3):
            await run(emulator, KEEPALIVE)
        await anyio.sleep(0.5)  # no queue delay with this scaler
        started = len(ep.workers)
    assert started == expected


async def test_request_count_is_capped_by_max_workers(anyio_backend: object) -> None:
    config = EndpointConfig(scaler="request_count", max_workers=2, cold_start_s=10.0)
    async with emulated(config) as (emulator, ep):
        for _ in range(4):
            await run(emulator, KEEPALIVE)
        await anyio.sleep(30)
    assert len(ep.workers) == 2


async def test_low_priority_jobs_never_scale_up_under_request_count(
    anyio_backend: object,
) -> None:
    config = EndpointConfig(scaler="request_count", cold_start_s=10.0)
    async with emulated(config) as (emulator, ep):
        job_id = await run(emulator, {"input": {}, "policy": {"lowPriority": True}})
        await anyio.sleep(120)
        assert ep.workers == []
        assert ep.jobs[job_id].status == "IN_QUEUE"


# -- start times: fixed or drawn from a seeded distribution ---------------------------------


async def boot_times(config: EndpointConfig) -> list[float]:
    async with emulated(config) as (emulator, ep):
        for _ in range(3):
            await run(emulator, KEEPALIVE)
        await until(lambda: len(ep.workers) == 3 and all(e.boot_s > 0 for e in ep.ledger))
        await until(lambda: all(w.state is WorkerState.RUNNING for w in ep.workers))
        return [round(entry.boot_s, 6) for entry in ep.ledger]


async def test_a_cold_start_range_is_drawn_deterministically_from_the_seed(
    anyio_backend: object,
) -> None:
    ranged = EndpointConfig(
        scaler="request_count", cold_start_s=(20.0, 90.0), seed=7, max_workers=3
    )
    first = await boot_times(ranged)
    second = await boot_times(ranged)
    other = await boot_times(EndpointConfig(**{**ranged.__dict__, "seed": 8}))
    assert first == second
    assert first != other
    assert all(20.0 <= t <= 90.0 for t in first + other)
    assert len(set(first)) == 3


def test_a_start_time_range_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="cold_start_s"):
        EndpointConfig(cold_start_s=(30.0, 10.0))
    assert EndpointConfig(flashboot_start_s=[1, 2]).flashboot_start_s == (1.0, 2.0)  # type: ignore[arg-type]


# -- unhealthy workers ----------------------------------------------------------------------


async def test_a_cold_start_over_the_init_timeout_makes_the_worker_unhealthy(
    anyio_backend: object,
) -> None:
    config = EndpointConfig(cold_start_s=500.0, max_workers=1, queue_delay_s=0.0)
    async with emulated(config) as (emulator, ep):
        job_id = await run(emulator, {"input": {}})
        await anyio.sleep(419)
        booting = ep.health()["workers"]
        await anyio.sleep(2)
        after = ep.health()
        await anyio.sleep(600)
        assert ep.jobs[job_id].status == "IN_QUEUE"
        [entry] = ep.ledger
    assert booting["initializing"] == 1
    assert after["workers"]["unhealthy"] == 1
    assert after["workers"]["initializing"] == 0
    assert after["jobs"]["inQueue"] == 1
    assert entry.billed_seconds == 420  # billed until it was marked unhealthy


async def test_the_init_timeout_is_configurable(anyio_backend: object) -> None:
    config = EndpointConfig(cold_start_s=500.0, init_timeout_s=600.0, queue_delay_s=0.0)
    async with emulated(config) as (emulator, ep):
        job_id = await run(emulator, {"input": {}})
        await until(lambda: ep.jobs[job_id].status == "COMPLETED")
    assert ep.health()["workers"]["unhealthy"] == 0


async def test_a_crash_loop_is_unhealthy_then_boots_again_until_it_comes_up(
    anyio_backend: object,
) -> None:
    config = EndpointConfig(
        crash_loop=2,
        unhealthy_restart_s=30.0,
        cold_start_s=10.0,
        max_workers=1,
        queue_delay_s=0.0,
    )
    async with emulated(config) as (emulator, ep):
        job_id = await run(emulator, {"input": {}})
        await anyio.sleep(15)
        first_crash = ep.health()
        await until(lambda: ep.jobs[job_id].status == "COMPLETED")
        done_at = anyio.current_time()
        [entry] = ep.ledger
    assert first_crash["workers"]["unhealthy"] == 1
    assert first_crash["jobs"]["inQueue"] == 1
    assert ep.workers[0].boot_crashes == 2
    assert len(ep.workers) == 1  # the same worker reboots, holding its slot
    assert done_at == pytest.approx(10 + 30 + 10 + 30 + 10, abs=0.5)
    assert entry.boot_s == pytest.approx(30.0, abs=0.05)  # unhealthy time is not billed


# -- throttled: workers wanted but no host capacity -----------------------------------------


async def test_no_capacity_keeps_wanted_workers_throttled_and_unbilled(
    anyio_backend: object,
) -> None:
    config = EndpointConfig(capacity=0, cold_start_s=10.0, queue_delay_s=0.0)
    async with emulated(config) as (emulator, ep):
        job_id = await run(emulator, {"input": {}})
        await anyio.sleep(300)
        health = ep.health()
        assert ep.jobs[job_id].status == "IN_QUEUE"
        [entry] = ep.ledger
    assert health["workers"]["throttled"] == 1
    assert health["workers"]["initializing"] == 0
    assert entry.billed_seconds == 0


async def test_a_throttled_worker_boots_once_capacity_frees(anyio_backend: object) -> None:
    config = EndpointConfig(capacity=1, max_workers=2, cold_start_s=10.0, queue_delay_s=0.0)
    async with emulated(config) as (emulator, ep):
        first = await run(emulator, {"input": {"action": "keepalive", "duration": 120}})
        await until(lambda: ep.jobs[first].status == "IN_PROGRESS")
        second = await run(emulator, {"input": {}})
        await anyio.sleep(20)
        waiting = [w.state for w in ep.workers]
        ep.faults.host_capacity(None)  # hosts free up
        await until(lambda: ep.jobs[second].status == "COMPLETED")
        done_after_s = anyio.current_time() - ep.jobs[second].submitted_at
        [busy, revived] = ep.ledger
    assert waiting == [WorkerState.RUNNING, WorkerState.THROTTLED]
    assert ep.jobs[second].worker_id == ep.workers[1].id
    assert done_after_s == pytest.approx(30.0, abs=0.5)  # 20 s throttled + 10 s boot
    assert revived.boot_s == pytest.approx(10.0, abs=0.05)  # throttled time is not billed
    assert busy.execution_s > 0

"""Workers' lives under the generations that use them: a lease ending under a cancelled
generation, a hundred workers at once, long generation timeouts."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest
from support import idled_out, world

from orchestrator import GenerationResult, OrchestratorError
from orchestrator.emulator import EmulatedEndpoint, EndpointConfig
from orchestrator.emulator.swarm import SwarmConfig
from orchestrator.workers import PROBE_INTERVAL_S

pytestmark = pytest.mark.anyio

PARAMS = {"prompt": "a lighthouse", "width": 64, "height": 64, "steps": 4}


def v2(**overrides: Any) -> EndpointConfig:
    values: dict[str, Any] = {"protocol": "v2", "cold_start_s": 30.0, "idle_timeout_s": 5.0}
    values.update(overrides)
    return EndpointConfig(**values)


def lease_jobs(endpoint: EmulatedEndpoint) -> list[Any]:
    return [job for job in endpoint.jobs.values() if job.input.get("action") == "lease"]


def tasks_left() -> list[str]:
    """The tasks still running besides this test's own (the emulator's and the pools' are
    long-lived; a generation's must all be gone)."""
    me = asyncio.current_task()
    names = []
    for task in asyncio.all_tasks():
        if task is me or task.done():
            continue
        coro = getattr(task.get_coro(), "__qualname__", "")
        names.append(str(coro))
    return [name for name in names if "GenerationRun" in name or "WorkerSession" in name]


async def test_a_cancelled_generation_whose_lease_ends_underneath_ends_once_leaking_nothing() -> (
    None
):
    slow = SwarmConfig(seconds_per_step=5.0)  # 4 steps: 20 s on the worker
    async with world(v2(swarm=slow), IdleTimeoutSec=600) as w:
        paths: list[tuple[str, ...]] = []

        async def generate() -> None:
            try:
                await w.orch.generate(PARAMS)
            except OrchestratorError as exc:  # the test fails if it ends as a failure
                paths.append(exc.path)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(generate)
            await anyio.sleep(36)  # generating on the fresh worker (boot 4 + 30 s)
            (lease,) = lease_jobs(w.endpoint)
            w.endpoint.cancel(lease)  # the platform ends the lease ...
            tasks.cancel_scope.cancel()  # ... as the caller gives up, at the same instant
        await anyio.sleep(PROBE_INTERVAL_S + 1)  # the next probe of its gateway finds it closed

        assert paths == []  # cancelled (the caller's own cancellation), not a failure
        cancels = [route for _, route, _ in w.endpoint.api_calls if route == "cancel"]
        assert len(cancels) <= 1  # the worker released once at most (RunPod ended it itself)
        assert lease.status == "CANCELLED"
        assert w.orch.status().warm == 0 and w.orch.status().busy == 0
        assert tasks_left() == []
        assert await idled_out(w.endpoint) == []
        assert [e.stopped_at is not None for e in w.endpoint.ledger] == [True]


async def test_a_generation_whose_lease_ends_underneath_fails_at_once_in_generating() -> None:
    slow = SwarmConfig(seconds_per_step=50.0)  # 200 s on the worker
    async with world(v2(swarm=slow), IdleTimeoutSec=600) as w:
        async with anyio.create_task_group() as tasks:

            async def end_the_lease() -> None:
                await anyio.sleep(40)
                (lease,) = lease_jobs(w.endpoint)
                w.endpoint.cancel(lease)

            tasks.start_soon(end_the_lease)
            started = anyio.current_time()
            with pytest.raises(OrchestratorError) as caught:
                await w.orch.generate(PARAMS)
        assert caught.value.path[-2:] == ("ShuttingDown", "Failed")
        assert str(caught.value.phase) == "generating"
        # the worker stops at the endpoint's idle timeout (5 s) after the cancel, and the
        # generation's connection with it: not the 200 s the generation would take
        assert anyio.current_time() - started <= 40 + 5 + 1


async def test_a_hundred_workers_serve_a_burst_of_300() -> None:
    endpoint = v2(max_workers=100, cold_start_s=20.0)
    async with world(endpoint, MaxWorkers=100, MaxConcurrent=300, IdleTimeoutSec=10) as w:
        results: list[GenerationResult] = []

        async def one(seed: int) -> None:
            results.append(await w.orch.generate({**PARAMS, "seed": seed}))

        async with anyio.create_task_group() as tasks:
            for seed in range(300):
                tasks.start_soon(one, seed)

        assert len(results) == 300
        assert len(lease_jobs(w.endpoint)) <= 100
        assert sum(result.cold_start for result in results) <= 100


@pytest.mark.parametrize("timeout_s", [3480, 7200, 86_400])
async def test_a_long_generation_timeout_never_forces_a_cold_start(timeout_s: int) -> None:
    async with world(v2(), GenerationTimeoutSec=timeout_s, IdleTimeoutSec=60) as w:
        first = await w.orch.generate(PARAMS)
        await anyio.sleep(20)
        second = await w.orch.generate(PARAMS)
        assert first.cold_start and not second.cold_start
        assert second.worker_id == first.worker_id

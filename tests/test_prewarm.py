"""Prewarm: waking workers ahead of demand, by call (``orch.prewarm``) or by schedule."""

from __future__ import annotations

import datetime as dt

import anyio
import pytest
from support import ENDPOINT, KEY, settings_for, world

from orchestrator import Orchestrator
from orchestrator.emulator import Emulator, EmulatorConfig, EndpointConfig

pytestmark = pytest.mark.anyio

PARAMS = {"prompt": "a lighthouse", "width": 64, "height": 64, "steps": 4}
V2 = EndpointConfig(protocol="v2", cold_start_s=60.0, max_workers=3)


async def test_prewarm_wakes_workers_so_the_first_generations_are_warm() -> None:
    async with world(V2, MaxWorkers=3) as w:
        assert await w.orch.prewarm(2) == 2
        assert await w.orch.prewarm(2) == 0  # already coming
        await anyio.sleep(70)
        assert w.orch.status().warm == 2
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(w.orch.generate, PARAMS)
            tasks.start_soon(w.orch.generate, PARAMS)
        assert len(w.endpoint.workers) == 2
        result = await w.orch.generate(PARAMS)
        assert result.cold_start is False


async def test_a_prewarmed_worker_is_kept_for_the_hold_then_released() -> None:
    async with world(V2, IdleTimeoutSec=30) as w:
        await w.orch.prewarm(1, hold_s=300)
        await anyio.sleep(64 + 290)
        assert w.orch.status().warm == 1
        await anyio.sleep(40)
        assert w.endpoint.running_workers() == []


async def test_prewarm_is_capped_by_max_workers() -> None:
    async with world(V2, MaxWorkers=2) as w:
        assert await w.orch.prewarm(5) == 2


async def test_prewarm_on_a_v1_endpoint_wakes_its_one_worker() -> None:
    async with world(EndpointConfig(cold_start_s=30.0), IdleTimeoutSec=60) as w:
        await w.orch.prewarm(3)
        await anyio.sleep(40)
        result = await w.orch.generate(PARAMS)
        assert result.cold_start is False
        assert len(w.endpoint.workers) == 1


async def test_a_prewarm_schedule_keeps_workers_during_its_hours_only() -> None:
    # Wednesday 07:59 UTC in virtual time: the rule starts a minute later, ends 10 minutes on.
    start = dt.datetime(2026, 11, 25, 7, 59, tzinfo=dt.UTC)
    config = EmulatorConfig(endpoints={ENDPOINT: V2}, api_keys=(KEY,))
    async with Emulator(config) as emulator:
        began = anyio.current_time()
        settings = settings_for(
            emulator, WorkerProtocol="v2", IdleTimeoutSec=30, Prewarm=["Wed 08:00-08:10 2"]
        )

        def wall() -> dt.datetime:
            return start + dt.timedelta(seconds=anyio.current_time() - began)

        endpoint = emulator.endpoint(ENDPOINT)
        async with Orchestrator(settings, wall_clock=wall) as orch:
            await anyio.sleep(50)
            assert endpoint.workers == []  # 07:59:50: not yet
            await anyio.sleep(120)
            assert orch.status().warm == 2  # 08:02:50: two warm, nobody generating
            await anyio.sleep(400)
            assert orch.status().warm == 2  # 08:09:30: still kept, far past the idle window
            await anyio.sleep(120)
            assert endpoint.running_workers() == []  # 08:11:30: the window ended, released

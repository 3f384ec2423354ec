"""A generation that got no worker says why, on both protocols: no GPU, or a crash loop.

And while it waits, its progress says what RunPod does: queued, booting, ready.
"""

from __future__ import annotations

import pytest
from support import world

from orchestrator import (
    NoCapacityError,
    ProgressEvent,
    Stage,
    WorkerCrashLoopError,
    WorkerNotReadyError,
)
from orchestrator.emulator import EndpointConfig

pytestmark = pytest.mark.anyio

PARAMS = {"prompt": "x", "width": 64, "height": 64, "steps": 2}


@pytest.mark.parametrize("protocol", ["v1", "v2"])
async def test_no_gpu_capacity_is_no_capacity_error(protocol: str) -> None:
    endpoint = EndpointConfig(protocol=protocol, cold_start_s=30.0, capacity=0)  # type: ignore[arg-type]
    async with world(endpoint, StartupTimeoutSec=120) as w:
        with pytest.raises(NoCapacityError) as caught:
            await w.orch.generate(PARAMS)
    assert "no GPU" in str(caught.value) and "within 120 s" in str(caught.value)
    assert isinstance(caught.value, WorkerNotReadyError)  # what callers caught before


@pytest.mark.parametrize("protocol", ["v1", "v2"])
async def test_workers_crashing_at_start_is_a_crash_loop_error(protocol: str) -> None:
    endpoint = EndpointConfig(protocol=protocol, cold_start_s=20.0, boot_fails=True)  # type: ignore[arg-type]
    async with world(endpoint, StartupTimeoutSec=120) as w:
        with pytest.raises(WorkerCrashLoopError) as caught:
            await w.orch.generate(PARAMS)
    assert "crash while starting" in str(caught.value)


@pytest.mark.parametrize("protocol", ["v1", "v2"])
async def test_a_slow_boot_is_still_the_plain_not_ready_error(protocol: str) -> None:
    endpoint = EndpointConfig(protocol=protocol, cold_start_s=10_000.0, init_timeout_s=20_000.0)  # type: ignore[arg-type]
    async with world(endpoint, StartupTimeoutSec=120) as w:
        with pytest.raises(WorkerNotReadyError) as caught:
            await w.orch.generate(PARAMS)
    assert type(caught.value) is WorkerNotReadyError


async def test_a_v1_cold_start_reports_booting_then_ready() -> None:
    events: list[ProgressEvent] = []
    async with world(EndpointConfig(protocol="v1", cold_start_s=45.0)) as w:
        await w.orch.generate(PARAMS, on_progress=events.append)
    waiting = [e.detail.get("waiting") for e in events if e.stage is Stage.BOOTING]
    assert "queued" in waiting and "booting" in waiting  # not IN_QUEUE for the whole boot
    assert [e.stage for e in events].count(Stage.READY) == 1

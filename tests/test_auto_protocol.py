"""``WorkerProtocol = auto``: leases first; a v1 endpoint is detected, served, and remembered."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import pytest
from support import idled_out, world

from orchestrator.emulator import EmulatedEndpoint, EmulatedJob, EndpointConfig
from orchestrator.emulator.swarm import SwarmConfig
from orchestrator.workers import LeaseJournal

pytestmark = pytest.mark.anyio

COLD_30 = EndpointConfig(cold_start_s=30.0)
PARAMS = {"prompt": "a lighthouse", "width": 64, "height": 64, "steps": 4}


def by_action(endpoint: EmulatedEndpoint, action: str) -> list[EmulatedJob]:
    return [job for job in endpoint.jobs.values() if job.input.get("action") == action]


async def test_a_v1_endpoint_is_detected_and_served_by_one_worker() -> None:
    async with world(EndpointConfig(cold_start_s=60.0, max_workers=3), WorkerProtocol="auto") as w:
        results = []

        async def one(seed: int) -> None:
            results.append(await w.orch.generate({**PARAMS, "seed": seed}))

        async with anyio.create_task_group() as tasks:
            for seed in range(3):
                tasks.start_soon(one, seed)

        assert w.orch.protocol == "v1"
        assert len(results) == 3
        assert len(by_action(w.endpoint, "lease")) == 1  # one probe, never one per request
        assert len(by_action(w.endpoint, "wakeup")) == 1
        assert len(w.endpoint.workers) == 1  # the probe's worker is the one woken
        assert {r.worker_id for r in results} == {w.endpoint.workers[0].id}


async def test_after_detection_later_generations_go_straight_to_v1() -> None:
    async with world(EndpointConfig(cold_start_s=30.0), WorkerProtocol="auto") as w:
        await w.orch.generate(PARAMS)
        await anyio.sleep(120)  # past the idle window: the worker is released
        await w.orch.generate(PARAMS)
        assert len(by_action(w.endpoint, "lease")) == 1
        assert len(by_action(w.endpoint, "wakeup")) == 2


async def test_a_v1_worker_held_long_has_its_keepalive_renewed_on_the_same_worker() -> None:
    slow = SwarmConfig(seconds_per_step=62.5)  # 4 steps = 250 s
    endpoint = EndpointConfig(cold_start_s=30.0, swarm=slow)
    async with world(endpoint, WorkerProtocol="auto", IdleTimeoutSec=200) as w:
        result = await w.orch.generate(PARAMS)
        await anyio.sleep(190)  # held warm past the first keepalive's 390 s
        keepalives = by_action(w.endpoint, "keepalive")
        assert len(keepalives) >= 2
        assert {job.worker_id for job in keepalives} == {result.worker_id}
        for job in keepalives:  # RunPod's execution timeout sits above the keepalive
            assert job.input["duration"] * 1000 < job.policy["executionTimeout"]
        assert len(w.endpoint.workers) == 1


async def test_the_detected_protocol_is_remembered_across_restarts(tmp_path: object) -> None:
    state = f"{tmp_path}/state.sqlite3"
    async with world(
        EndpointConfig(cold_start_s=30.0), WorkerProtocol="auto", StateFile=state
    ) as w:
        await w.orch.generate(PARAMS)
    async with world(
        EndpointConfig(cold_start_s=30.0), WorkerProtocol="auto", StateFile=state
    ) as w:
        assert w.orch.protocol == "v1"
        await w.orch.generate(PARAMS)
        assert by_action(w.endpoint, "lease") == []


async def test_a_v2_endpoint_under_auto_uses_leases_and_scales_out_after_the_first() -> None:
    slow = SwarmConfig(seconds_per_step=30.0)  # 2 min per generation: waiting is worse than booting
    endpoint = EndpointConfig(protocol="v2", cold_start_s=60.0, max_workers=3, swarm=slow)
    async with world(endpoint, WorkerProtocol="auto", MaxWorkers=3) as w:
        await w.orch.generate(PARAMS)
        assert w.orch.protocol == "v2"
        async with anyio.create_task_group() as tasks:
            for _ in range(3):
                tasks.start_soon(w.orch.generate, PARAMS)
        assert len(by_action(w.endpoint, "lease")) == 3


async def test_a_v1_worker_stays_warm_for_the_idle_window_then_is_released() -> None:
    async with world(
        EndpointConfig(cold_start_s=30.0), WorkerProtocol="v1", IdleTimeoutSec=60
    ) as w:
        first = await w.orch.generate(PARAMS)
        await anyio.sleep(10)
        second = await w.orch.generate(PARAMS)
        assert first.cold_start and not second.cold_start
        assert second.worker_id == first.worker_id
        await anyio.sleep(62)
        assert await idled_out(w.endpoint) == []
        assert all(job.status == "CANCELLED" for job in by_action(w.endpoint, "keepalive"))


async def test_an_endpoint_remembered_as_v1_but_upgraded_to_leases_is_found_again(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state.sqlite3"
    journal = await LeaseJournal.open(state)
    await journal.remember_protocol("test-ep", "v1")  # an earlier run found v1 there
    await journal.close_file()
    upgraded = EndpointConfig(protocol="v2", cold_start_s=30.0)
    async with world(upgraded, WorkerProtocol="auto", StateFile=str(state)) as w:
        assert w.orch.protocol == "v1"  # remembered: no lease probe first
        result = await w.orch.generate(PARAMS)  # the v2 worker refuses the wake-up ...
        assert w.orch.protocol == "v2"  # ... and leases are used from then on
        assert len(result.images) == 1
        assert len(by_action(w.endpoint, "wakeup")) == 1
        assert len(by_action(w.endpoint, "lease")) == 1
    journal = await LeaseJournal.open(state)
    remembered = await journal.known_protocol("test-ep")
    await journal.close_file()
    assert remembered is not None and remembered[0] == "v2"


async def test_a_protocol_remembered_long_ago_is_detected_again(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite3"
    journal = await LeaseJournal.open(state)
    await journal.remember_protocol("test-ep", "v1")
    await journal.close_file()
    with sqlite3.connect(state) as db:  # found two days ago
        db.execute("UPDATE endpoint_protocols SET detected_at = '2000-01-01T00:00:00.000Z'")
    async with world(
        EndpointConfig(protocol="v2", cold_start_s=30.0),
        WorkerProtocol="auto",
        StateFile=str(state),
    ) as w:
        assert w.orch.protocol == "auto"
        await w.orch.generate(PARAMS)
        assert w.orch.protocol == "v2"
        assert by_action(w.endpoint, "wakeup") == []  # a lease probe, never a wake-up

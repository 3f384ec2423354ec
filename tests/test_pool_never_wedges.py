"""The warm pool never wedges: bursts, leases that never stream, garbled or dropped streams.

Regression tests for a pool that stopped serving under ordinary bursty load: a change on one
lease interrupted another lease's ``/stream`` long-poll, whose output (read once) was lost, so
that lease stayed Booting forever, counted as a seat about to free up.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import anyio
import pytest
from slow_proxy import slow_proxy
from support import KEY, World, settings_for, world

from orchestrator import Orchestrator, OrchestratorError
from orchestrator.emulator import (
    EmulatedEndpoint,
    EmulatedJob,
    Emulator,
    EmulatorConfig,
    EndpointConfig,
)
from orchestrator.workers import LeaseJournal

pytestmark = pytest.mark.anyio

PARAMS = {"prompt": "a burst", "width": 64, "height": 64, "steps": 4}


def v2(**overrides: Any) -> EndpointConfig:
    values: dict[str, Any] = {
        "protocol": "v2",
        "cold_start_s": (5.0, 15.0),
        "idle_timeout_s": 5.0,
        "max_workers": 3,
        "seed": 11,
    }
    values.update(overrides)
    return EndpointConfig(**values)


def lease_jobs(endpoint: EmulatedEndpoint) -> list[EmulatedJob]:
    return [job for job in endpoint.jobs.values() if job.input.get("action") == "lease"]


async def burst(w: World, size: int, seed0: int) -> tuple[int, list[BaseException]]:
    done = 0
    failures: list[BaseException] = []

    async def one(seed: int) -> None:
        nonlocal done
        try:
            await w.orch.generate({**PARAMS, "seed": seed})
        except OrchestratorError as exc:
            failures.append(exc)
        else:
            done += 1

    async with anyio.create_task_group() as tasks:
        for i in range(size):
            tasks.start_soon(one, seed0 + i)
    return done, failures


def nothing_bills(endpoint: EmulatedEndpoint) -> bool:
    return endpoint.running_workers() == [] and all(
        entry.stopped_at is not None for entry in endpoint.ledger
    )


@pytest.mark.slow
async def test_fifty_bursts_of_25_all_complete_and_every_worker_stops_after() -> None:
    rng = random.Random(5)
    async with world(v2(), MaxWorkers=3, IdleTimeoutSec=0.3) as w:
        for number in range(50):
            done, failures = await burst(w, 25, seed0=number * 100)
            assert (number, done, failures) == (number, 25, [])
            await anyio.sleep(rng.uniform(0.0, 12.0))
        await anyio.sleep(10)
        assert nothing_bills(w.endpoint)


@pytest.mark.slow
async def test_bursts_over_a_slow_network_all_complete() -> None:
    """Answers take 0.3-1.5 s to arrive: a long-poll given up meanwhile would lose a lease."""
    rng = random.Random(7)
    config = EmulatorConfig(endpoints={"test-ep": v2()}, api_keys=(KEY,))
    async with (
        Emulator(config) as emulator,
        slow_proxy(emulator.base_url, lambda route: rng.uniform(0.3, 1.5)) as proxy,
    ):
        settings = settings_for(
            emulator,
            RunPodBaseUrl=proxy.base_url,
            WorkerProtocol="v2",
            MaxWorkers=3,
            IdleTimeoutSec=0.3,
            PollIntervalMs=1000,
        )
        async with Orchestrator(settings) as orch:
            w = World(emulator, emulator.endpoint("test-ep"), orch)
            for number in range(50):
                done, failures = await burst(w, 25, seed0=number * 100)
                assert (number, done, failures) == (number, 25, [])
                await anyio.sleep(rng.uniform(0.0, 12.0))
            await anyio.sleep(10)
            assert nothing_bills(w.endpoint)


async def one_cold_generation_through(fault: str) -> None:
    """A generation whose lease is lost to ``fault`` gets another worker in time; afterwards
    the stuck job is cancelled, a clean burst is all done and nothing bills."""
    async with world(v2(cold_start_s=10.0), MaxWorkers=2, IdleTimeoutSec=0) as w:
        await w.orch.generate({**PARAMS, "seed": 0})  # the endpoint's cold start is measured
        await anyio.sleep(10)  # and its worker gone
        if fault == "never streams":
            w.endpoint.faults.lease_never_streams()
        elif fault == "garbled":
            w.endpoint.faults.malformed_body("stream")
        else:
            w.endpoint.faults.drop_after_answer("stream")
        started = anyio.current_time()
        result = await w.orch.generate({**PARAMS, "seed": 1})
        assert result.cold_start
        assert anyio.current_time() - started < w.orch.settings.startup_timeout_sec
        stuck = lease_jobs(w.endpoint)[1]
        assert result.job_ids != (stuck.id,)
        await anyio.sleep(w.orch.settings.startup_timeout_sec)
        assert stuck.status == "CANCELLED"
        done, failures = await burst(w, 25, seed0=100)
        assert (done, failures) == (25, [])
        await anyio.sleep(30)
        assert nothing_bills(w.endpoint)


@pytest.mark.parametrize("fault", ["never streams", "garbled", "dropped mid-answer"])
async def test_a_lease_lost_on_the_way_is_replaced_and_its_job_cancelled(fault: str) -> None:
    await one_cold_generation_through(fault)


async def test_the_lease_request_carries_the_pools_terms() -> None:
    async with world(v2(), IdleTimeoutSec=30) as w:
        await w.orch.generate(PARAMS)
        (job,) = lease_jobs(w.endpoint)
        lease_input = job.input
        assert lease_input["idle_seconds"] == 90  # the idle window + a 60 s safety margin
        assert lease_input["startup_grace_seconds"] == 90
        # It takes generations for an hour before it retires, whatever GenerationTimeoutSec.
        assert lease_input["max_lease_seconds"] == 3600 + 300 + 120


async def test_a_run_answered_after_the_caller_gave_up_is_found_and_cancelled() -> None:
    """The orchestrator exits while its lease request is on the way; the answer comes late."""
    config = EmulatorConfig(endpoints={"test-ep": v2(cold_start_s=10.0)}, api_keys=(KEY,))
    async with (
        Emulator(config) as emulator,
        slow_proxy(emulator.base_url, lambda route: 20.0 if route == "run" else 0.0) as proxy,
    ):
        endpoint = emulator.endpoint("test-ep")
        settings = settings_for(
            emulator, RunPodBaseUrl=proxy.base_url, WorkerProtocol="v2", ReleaseTimeoutSec=5
        )
        async with Orchestrator(settings) as orch:
            with anyio.move_on_after(2):  # the caller gives up; the /run answer is 18 s away
                await orch.generate(PARAMS)
            # Leaving waits ReleaseTimeoutSec (+5 s) for the lease to end: the answer is later.
        (job,) = lease_jobs(endpoint)
        assert job.status == "CANCELLED"
        await anyio.sleep(10)
        assert nothing_bills(endpoint)
        assert proxy.lost == {}


async def test_a_run_whose_answer_never_comes_stays_journalled_and_its_worker_ends_itself(
    tmp_path: Path,
) -> None:
    """RunPod took the request but its answer timed out: the job id is unknown, so the journal
    keeps the entry open (the next start reports it), and the lease's terms bound its bill."""
    config = EmulatorConfig(endpoints={"test-ep": v2(cold_start_s=10.0)}, api_keys=(KEY,))
    state = tmp_path / "state.sqlite3"
    async with (
        Emulator(config) as emulator,
        slow_proxy(emulator.base_url, lambda route: 60.0 if route == "run" else 0.0) as proxy,
    ):
        endpoint = emulator.endpoint("test-ep")
        settings = settings_for(
            emulator,
            RunPodBaseUrl=proxy.base_url,
            WorkerProtocol="v2",
            IdleTimeoutSec=10,
            StateFile=str(state),
        )
        async with Orchestrator(settings) as orch:
            with pytest.raises(OrchestratorError):
                await orch.generate(PARAMS)  # /run times out after RequestTimeoutSec (30 s)
        journal = await LeaseJournal.open(state)
        try:
            (entry,) = await journal.open_entries()
            assert entry.job_id is None
        finally:
            await journal.close_file()
        (job,) = lease_jobs(endpoint)
        await anyio.sleep(200)
        assert job.status == "COMPLETED"  # ended by its worker
        (bill,) = endpoint.ledger
        assert bill.billed_seconds <= 10 + 70 + 10  # boot + grace (window + 60 s) + idle

"""The warm pool on protocol v2: leases reused while warm, scaled out, withdrawn, let go.

Every test runs the real engine against the emulator over loopback HTTP in virtual time.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from support import World, idled_out, world

from orchestrator import GenerationResult, OrchestratorError, ProgressEvent, Stage
from orchestrator.emulator import EmulatedEndpoint, EmulatedJob, EndpointConfig
from orchestrator.emulator.swarm import SwarmConfig
from orchestrator.workers import PROBE_INTERVAL_S

pytestmark = pytest.mark.anyio

PARAMS = {"prompt": "a lighthouse", "width": 64, "height": 64, "steps": 4}
WARM_PATH = ("Idle", "Ready", "Generating", "ShuttingDown", "Done")


def v2(**overrides: Any) -> EndpointConfig:
    return replace(
        EndpointConfig(protocol="v2", cold_start_s=60.0, idle_timeout_s=5.0), **overrides
    )


def leases(endpoint: EmulatedEndpoint) -> list[EmulatedJob]:
    return [job for job in endpoint.jobs.values() if job.input.get("action") == "lease"]


def billed(endpoint: EmulatedEndpoint) -> int:
    return sum(entry.billed_seconds for entry in endpoint.ledger)


async def generate(w: World, seed: int, **kwargs: Any) -> GenerationResult:
    return await w.orch.generate({**PARAMS, "seed": seed}, **kwargs)


async def test_two_generations_10_s_apart_share_one_lease_and_the_second_is_warm() -> None:
    async with world(v2()) as w:
        first = await w.orch.generate({**PARAMS, "seed": 1})
        await anyio.sleep(10)
        second = await w.orch.generate({**PARAMS, "seed": 2})

        assert first.cold_start is True and second.cold_start is False
        assert second.path == WARM_PATH
        assert second.worker_id == first.worker_id
        assert second.timings.startup < 0.1
        assert len(leases(w.endpoint)) == 1
        assert len(w.endpoint.workers) == 1


async def test_a_free_worker_is_released_after_the_idle_window_and_bills_no_longer() -> None:
    async with world(v2(), IdleTimeoutSec=30) as w:
        done_at = 0.0
        await w.orch.generate(PARAMS)
        done_at = anyio.current_time()
        await anyio.sleep(29)
        assert len(w.endpoint.running_workers()) == 1  # still warm inside the window
        await anyio.sleep(3)
        assert await idled_out(w.endpoint) == []
        (lease,) = leases(w.endpoint)
        assert lease.status == "CANCELLED"
        (entry,) = w.endpoint.ledger
        # the window, then the endpoint's idle timeout after the cancel (a per-job stop)
        assert entry.stopped_at is not None and entry.stopped_at - done_at <= 31 + 5


async def test_an_ordinary_first_cold_start_costs_a_lease_s_three_calls_and_no_diagnosis() -> None:
    async with world(v2(cold_start_s=85.0), IdleTimeoutSec=0) as w:  # nothing measured yet
        first = await generate(w, 1)
        await anyio.sleep(1)
        assert await idled_out(w.endpoint) == []
        assert first.cold_start is True
        routes = sorted(route for _method, route, _status in w.endpoint.api_calls)
        assert routes == ["cancel", "run", "stream"]  # request, hand-over, release


async def test_a_first_cold_start_far_past_the_ordinary_ones_is_diagnosed() -> None:
    async with world(v2(cold_start_s=110.0), IdleTimeoutSec=0, StartupTimeoutSec=300) as w:
        await generate(w, 1)
        assert [route for _method, route, _status in w.endpoint.api_calls].count("health") == 1


async def test_idle_timeout_zero_releases_at_once() -> None:
    async with world(v2(), IdleTimeoutSec=0) as w:
        await w.orch.generate(PARAMS)
        await anyio.sleep(0.5)
        assert await idled_out(w.endpoint) == []


async def test_a_burst_of_8_with_max_workers_3_takes_exactly_3_leases_and_all_complete() -> None:
    async with world(v2(max_workers=3), MaxWorkers=3) as w:
        results = []

        async def one(seed: int) -> None:
            results.append(await generate(w, seed))

        async with anyio.create_task_group() as tasks:
            for seed in range(8):
                tasks.start_soon(one, seed)

        assert len(results) == 8
        assert len(leases(w.endpoint)) == 3
        assert len({r.worker_id for r in results}) == 3
        assert sum(r.cold_start for r in results) == 3
        assert len(w.endpoint.workers) == 3


async def test_a_queued_lease_is_withdrawn_when_a_warm_worker_frees_first() -> None:
    # RunPod allows one worker, swarmpod may hold two: the second lease can only wait IN_QUEUE.
    slow = SwarmConfig(seconds_per_step=40.0)  # 4 steps = 160 s
    async with world(v2(max_workers=1, swarm=slow), MaxWorkers=2) as w:
        results = []

        async def one(seed: int) -> None:
            results.append(await generate(w, seed))

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(one, 1)
            # The first generation has run for longer than a cold start: a lease is asked for.
            await anyio.sleep(170)
            tasks.start_soon(one, 2)

        first, second = results
        assert second.cold_start is False and second.worker_id == first.worker_id
        lease_jobs = leases(w.endpoint)
        assert len(lease_jobs) == 2
        withdrawn = lease_jobs[1]
        assert withdrawn.status == "CANCELLED" and withdrawn.worker_id is None
        assert len(w.endpoint.workers) == 1  # the withdrawn lease never started (or billed) one
        await anyio.lowlevel.checkpoint()
        assert [e.worker_id for e in w.endpoint.ledger] == [first.worker_id]


async def test_a_lease_whose_worker_already_runs_it_is_kept_not_withdrawn() -> None:
    slow = SwarmConfig(seconds_per_step=50.0)  # 200 s per generation
    async with world(v2(max_workers=2, swarm=slow), MaxWorkers=2) as w:
        results = {}

        async def one(name: str, seed: int, steps: int) -> None:
            results[name] = await w.orch.generate({**PARAMS, "seed": seed, "steps": steps})

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(one, "a", 1, 4)
            await anyio.sleep(150)  # "a" has run for longer than a cold start: a lease is asked
            # The second lease gets a worker at ~214 s but never streams; "a" frees at ~264 s,
            # and "b" (50 s) takes its seat.
            w.endpoint.faults.lease_never_streams()
            tasks.start_soon(one, "b", 2, 1)
        assert results["b"].cold_start is False
        assert results["b"].worker_id == results["a"].worker_id
        second = leases(w.endpoint)[1]
        assert second.status == "IN_PROGRESS"
        assert w.orch.status().booting == 1
    assert second.status == "CANCELLED"


async def test_a_queued_lease_is_withdrawn_even_while_runpod_boots_a_worker_for_it() -> None:
    # The job stays IN_QUEUE until the worker's handler takes it (after its boot): withdrawn.
    slow = SwarmConfig(seconds_per_step=25.0)  # 100 s per generation
    async with world(v2(max_workers=2, swarm=slow), MaxWorkers=2) as w:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(generate, w, 1)
            # The first has run for longer than a cold start: a lease is asked for, and RunPod
            # boots a worker for it from ~144 s; the first frees at ~164 s.
            await anyio.sleep(140)
            tasks.start_soon(generate, w, 2)
        assert [job.status for job in leases(w.endpoint)][1] == "CANCELLED"
        assert w.orch.status().booting == 0


async def test_a_worker_runs_as_many_generations_at_once_as_its_swarmui_allows() -> None:
    swarm = SwarmConfig(max_usages=2, seconds_per_step=2.0)
    async with world(v2(max_workers=3, swarm=swarm), MaxWorkers=3) as w:
        await generate(w, 0)  # the worker is warm; its SwarmUI runs 2 generations at once
        results = []

        async def one(seed: int) -> None:
            results.append(await generate(w, seed))

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(one, 1)
            tasks.start_soon(one, 2)
            await anyio.sleep(1)
            assert w.orch.status().busy == 2
        assert [r.cold_start for r in results] == [False, False]
        assert len({r.worker_id for r in results}) == 1
        assert len(leases(w.endpoint)) == 1


async def test_shutdown_releases_every_worker_and_closes_the_journal() -> None:
    async with world(v2(max_workers=2), MaxWorkers=2, IdleTimeoutSec=600) as w:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(generate, w, 1)
            tasks.start_soon(generate, w, 2)
        assert len(w.endpoint.running_workers()) == 2
        journal = w.orch._journal
        assert journal is not None and len(await journal.open_entries()) == 2
        await w.orch.__aexit__(None, None, None)
        assert all(job.status == "CANCELLED" for job in leases(w.endpoint))
        await anyio.sleep(1)
        assert await idled_out(w.endpoint) == []


async def test_the_journal_holds_each_lease_while_it_is_open_and_closes_it_after() -> None:
    async with world(v2(), IdleTimeoutSec=10) as w:
        await generate(w, 1)
        journal = w.orch._journal
        assert journal is not None
        (entry,) = await journal.open_entries()
        (lease,) = leases(w.endpoint)
        assert entry.job_id == lease.id and entry.protocol == "v2"
        await anyio.sleep(12)
        assert await journal.open_entries() == []
        assert (await journal.entry(entry.id)).outcome == "released"


async def test_auto_idle_window_follows_the_measured_cold_start() -> None:
    async with world(v2(cold_start_s=80.0), IdleTimeoutSec="auto") as w:
        assert w.orch.status().idle_window_s == 60.0  # assumed before anything was measured
        await generate(w, 1)
        measured = w.orch.status().idle_window_s
        assert 80.0 <= measured <= 90.0  # queue delay + the 80 s boot
        await anyio.sleep(measured - 2)
        assert len(w.endpoint.running_workers()) == 1
        await anyio.sleep(4)
        assert await idled_out(w.endpoint) == []


async def test_the_worker_ending_its_lease_itself_is_noticed_and_the_next_one_is_cold() -> None:
    async with world(v2(), IdleTimeoutSec=600) as w:
        await generate(w, 1)
        (lease,) = leases(w.endpoint)
        w.endpoint.cancel(lease)  # the platform ends it (as a worker at max_lease_seconds)
        await anyio.sleep(PROBE_INTERVAL_S + 1)  # the next probe of its gateway finds it closed
        assert w.orch.status().warm == 0
        assert await idled_out(w.endpoint) == []  # the worker is gone too
        again = await generate(w, 2)
        assert again.cold_start is True


@pytest.mark.parametrize(
    ("endpoint", "settings", "reason"),
    [
        (v2(capacity=0), {"StartupTimeoutSec": 120}, "throttled"),
        (
            v2(cold_start_s=10.0, crash_loop=5, unhealthy_restart_s=60.0),
            {"StartupTimeoutSec": 200},
            "unhealthy",
        ),
        (v2(), {}, "booting"),
        (v2(), {}, "queued"),
    ],
)
async def test_a_waiting_generation_says_why_it_waits(
    endpoint: EndpointConfig, settings: dict[str, Any], reason: str
) -> None:
    async with world(endpoint, **settings) as w:
        seen: list[str] = []

        def watch(event: ProgressEvent) -> None:
            if "waiting" in event.detail:
                seen.append(str(event.detail["waiting"]))

        with contextlib.suppress(OrchestratorError):  # the point is what it said while waiting
            await w.orch.generate(PARAMS, on_progress=watch)
        assert reason in seen


async def test_model_loading_is_reported_while_the_worker_swarmui_loads() -> None:
    swarm = SwarmConfig(backend_load_s=20.0)
    async with world(v2(swarm=swarm)) as w:
        seen: list[str] = []
        await w.orch.generate(
            PARAMS, on_progress=lambda e: seen.append(str(e.detail.get("waiting", "")))
        )
        assert "model_loading" in seen


async def test_waiting_behind_max_concurrent_says_so() -> None:
    async with world(v2(), MaxConcurrent=1) as w:
        events: list[ProgressEvent] = []
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(generate, w, 1)
            await anyio.sleep(1)
            tasks.start_soon(lambda: w.orch.generate(PARAMS, on_progress=events.append))
        queued = [e for e in events if e.stage is Stage.QUEUED]
        assert queued and queued[0].detail["waiting"] == "max_concurrent"


async def test_every_worker_busy_at_max_workers_says_so() -> None:
    slow = SwarmConfig(seconds_per_step=5.0)
    async with world(v2(max_workers=1, swarm=slow), MaxWorkers=1) as w:
        events: list[ProgressEvent] = []
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(generate, w, 1)
            await anyio.sleep(70)
            tasks.start_soon(lambda: w.orch.generate(PARAMS, on_progress=events.append))
        reasons = [e.detail.get("waiting") for e in events]
        assert "workers_busy" in reasons


async def test_a_request_during_a_cold_start_waits_for_that_worker_once_generations_are_quick() -> (
    None
):
    async with world(v2(max_workers=3), MaxWorkers=3, IdleTimeoutSec=0) as w:
        await generate(w, 0)  # a generation takes ~1 s: now the pool knows
        assert await idled_out(w.endpoint) == []
        results = []

        async def one(seed: int) -> None:
            results.append(await generate(w, seed))

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(one, 1)  # a new cold start
            await anyio.sleep(30)
            tasks.start_soon(one, 2)  # booting a second worker would take longer than waiting
        assert len(leases(w.endpoint)) == 2  # the first one, and one for both of these
        assert [r.cold_start for r in results] == [True, False]


async def test_of_several_idle_workers_only_the_last_used_keeps_the_whole_window() -> None:
    slow = SwarmConfig(seconds_per_step=2.0)  # 8 s per generation
    async with world(v2(max_workers=3, swarm=slow), MaxWorkers=3, IdleTimeoutSec=120) as w:
        async with anyio.create_task_group() as tasks:
            for seed in range(3):
                tasks.start_soon(generate, w, seed)
        # nothing showed three workers would be needed at once again: the two used before
        # the last were let go when they freed
        assert w.orch.status().warm == 1
        await anyio.sleep(130)  # the last one goes at the end of its window
        assert w.endpoint.running_workers() == []


async def test_hold_worker_gives_a_ready_swarmui_and_gives_the_worker_back() -> None:
    async with world(v2(), IdleTimeoutSec=30) as w:
        async with w.orch.hold_worker() as swarm:
            listing = await swarm.list_models(depth=999)
            assert listing.names
            assert w.orch.status().busy == 1
        assert w.orch.status().busy == 0 and w.orch.status().warm == 1
        warm = await generate(w, 1)
        assert warm.cold_start is False
        await anyio.sleep(32)
        assert await idled_out(w.endpoint) == []


async def test_a_generation_running_far_past_its_expected_time_gets_the_line_a_worker() -> None:
    # No event happens while it overruns: the pool reviews its plan as time passes.
    slow = SwarmConfig(seconds_per_step=5.0)
    async with world(v2(max_workers=2, swarm=slow), MaxWorkers=2) as w:
        await w.orch.generate({**PARAMS, "seed": 1, "steps": 2})  # a generation takes 10 s
        finished: dict[str, float] = {}
        results: dict[str, GenerationResult] = {}

        async def one(name: str, steps: int) -> None:
            results[name] = await w.orch.generate({**PARAMS, "seed": 2, "steps": steps})
            finished[name] = anyio.current_time()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(one, "long", 40)  # 200 s
            await anyio.sleep(1)
            tasks.start_soon(one, "next", 2)
        assert results["long"].cold_start is False
        assert results["next"].cold_start is True
        assert results["next"].worker_id != results["long"].worker_id
        assert finished["next"] < finished["long"]

"""The engine's chart logic on an in-memory station: no emulator, no HTTP.

Each test drives one generation through a :class:`FakeStation` and reads where its chart went,
what it raised, and how its worker was given back.
"""

from __future__ import annotations

import asyncio
from typing import cast

import aiohttp
import anyio
import pytest
from fake_station import FakeStation

from orchestrator import (
    GenerationTimeoutError,
    NoCapacityError,
    OrchestratorError,
    ProgressEvent,
    Stage,
    TransportError,
    WorkerCrashLoopError,
    WorkerNotReadyError,
)
from orchestrator._progress import ProgressReporter
from orchestrator.engine import GenerationPlan, GenerationRequest, GenerationRun
from orchestrator.errors import Phase
from orchestrator.settings import Timeouts
from orchestrator.workers import Admission, Station, WaitReason

pytestmark = pytest.mark.anyio

TIMEOUTS = Timeouts(startup=120.0, generation=60.0, request=30.0, release=30.0)
COLD = ("Idle", "Waking", "Polling", "Ready", "Generating", "ShuttingDown")


def run_on(station: FakeStation, events: list[ProgressEvent] | None = None) -> GenerationRun:
    async def connect() -> Station:
        return station

    run = GenerationRun(
        GenerationPlan(
            GenerationRequest({"prompt": "x", "width": 64, "height": 64}, images=2),
            connect=connect,
            http=cast(aiohttp.ClientSession, None),  # the fake worker needs none
            admission=Admission(4),
            timeouts=TIMEOUTS,
            poll_interval=1.0,
        )
    )
    if events is not None:
        run.observe(ProgressReporter(events.append))
    return run


async def test_a_warm_seat_goes_straight_to_ready_and_is_given_back_once() -> None:
    station = FakeStation(warm=True)
    run = run_on(station)
    await run.run()
    assert tuple(run.recorder.path) == ("Idle", "Ready", "Generating", "ShuttingDown", "Done")
    assert [broken for _, broken in station.given_back] == [False]
    assert len(run.images) == 2 and not run.cold_start


async def test_a_cold_seat_passes_waking_and_polling_and_says_why_it_waits() -> None:
    station = FakeStation(boot_s=30.0)
    events: list[ProgressEvent] = []
    run = run_on(station, events)
    await run.run()
    assert tuple(run.recorder.path) == (*COLD, "Done")
    assert run.cold_start
    waiting = [e.detail.get("waiting") for e in events if e.stage is Stage.BOOTING]
    assert waiting == ["requesting", "queued", "booting"]
    assert events[-1].stage is Stage.DONE


@pytest.mark.parametrize(
    ("reasons", "error"),
    [
        ((WaitReason.QUEUED,), WorkerNotReadyError),
        ((WaitReason.THROTTLED,), NoCapacityError),
        ((WaitReason.QUEUED, WaitReason.UNHEALTHY), WorkerCrashLoopError),
    ],
)
async def test_a_startup_timeout_says_whether_there_was_no_gpu_or_a_crash_loop(
    reasons: tuple[WaitReason, ...], error: type[WorkerNotReadyError]
) -> None:
    station = FakeStation(boot_s=float("inf"), reasons=reasons)
    run = run_on(station)
    with pytest.raises(WorkerNotReadyError) as caught:
        await run.run()
    assert type(caught.value) is error
    assert caught.value.phase is Phase.POLLING
    assert caught.value.path == ("Idle", "Waking", "Polling", "ShuttingDown", "Failed")
    assert station.given_back == []  # no seat was ever taken


async def test_a_generation_past_its_deadline_times_out_in_generating() -> None:
    station = FakeStation(warm=True, seconds=600.0)
    run = run_on(station)
    with pytest.raises(GenerationTimeoutError) as caught:
        await run.run()
    assert caught.value.phase is Phase.GENERATING
    assert run.chart.state_id == "failed"
    assert len(station.given_back) == 1


async def test_a_transport_failure_gives_the_worker_back_broken() -> None:
    station = FakeStation(warm=True, failure=TransportError("the socket closed"))
    run = run_on(station)
    with pytest.raises(TransportError):
        await run.run()
    assert [broken for _, broken in station.given_back] == [True]


async def test_a_worker_ending_underneath_fails_the_generation_at_once() -> None:
    station = FakeStation(warm=True, seconds=300.0)
    run = run_on(station)
    async with anyio.create_task_group() as tasks:

        async def end_it() -> None:
            await anyio.sleep(10)
            station.end_worker()

        tasks.start_soon(end_it)
        with pytest.raises(TransportError) as caught:
            await run.run()
    assert caught.value.phase is Phase.GENERATING
    assert anyio.current_time() < 20
    assert run.chart.state_id == "failed" and len(station.given_back) == 1


async def test_cancelled_while_its_worker_ends_one_final_state_one_give_back_no_task_left() -> None:
    before = asyncio.all_tasks()
    station = FakeStation(warm=True, seconds=300.0)
    run = run_on(station)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(run.run)
        await anyio.sleep(10)
        station.end_worker()  # the lease ends ...
        tasks.cancel_scope.cancel()  # ... as the caller gives up, in the same instant
    assert run.chart.state_id == "cancelled"
    assert run.recorder.path[-2:] == ["ShuttingDown", "Cancelled"]
    assert len(station.given_back) == 1
    assert [task for task in asyncio.all_tasks() - before if not task.done()] == []


async def test_an_error_before_admission_still_reaches_a_final_state() -> None:
    async def refuse() -> Station:
        raise OrchestratorError("no key")

    run = GenerationRun(
        GenerationPlan(
            GenerationRequest({"prompt": "x"}),
            connect=refuse,
            http=cast(aiohttp.ClientSession, None),
            admission=Admission(1),
            timeouts=TIMEOUTS,
            poll_interval=1.0,
        )
    )
    with pytest.raises(OrchestratorError):
        await run.run()
    assert tuple(run.recorder.path) == ("Idle", "ShuttingDown", "Failed")

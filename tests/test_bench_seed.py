"""The seed re-enacted: one generation makes exactly the calls, at exactly the times, that the
seed's C# code makes (HartsyAI/SwarmUI-Runpod-Serverless-Backend @30844e89), and SwarmUI runs
its backend's generations one at a time (MaxUsages 1)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import aiohttp
import anyio
import pytest

from benchmarks._seed import SeedBackend, SeedSettings
from orchestrator.emulator import EmulatedEndpoint, Emulator, EmulatorConfig, EndpointConfig
from orchestrator.emulator.swarm import SwarmConfig

pytestmark = pytest.mark.anyio

KEY = "seed-key"
COLD_START_S = 30.5  # a worker starts 4 s after the wake-up is queued: ready at 34.5 s
PARAMS = {"prompt": "a fox", "width": 64, "height": 64, "steps": 4, "seed": 1}


@dataclass(frozen=True)
class Call:
    at: float
    method: str
    path: str


@dataclass
class Seeded:
    emulator: Emulator
    endpoint: EmulatedEndpoint
    http: aiohttp.ClientSession
    calls: list[Call]

    def backend(self) -> SeedBackend:
        return SeedBackend(self.http, self.emulator.base_url, "ep", KEY, SeedSettings())


@pytest.fixture
async def seeded() -> AsyncIterator[Seeded]:
    config = EndpointConfig(
        cold_start_s=COLD_START_S,
        idle_timeout_s=5.0,
        protocol="v1",
        swarm=SwarmConfig(seconds_per_step=1.0),
    )
    calls: list[Call] = []
    trace = aiohttp.TraceConfig()

    async def on_start(
        _session: aiohttp.ClientSession, _context: SimpleNamespace, params: Any
    ) -> None:
        path = params.url.path  # RunPod: its route (run, status...); SwarmUI: the whole path
        route = path.split("/ep/", 1)[1].split("/")[0] if "/ep/" in path else path
        calls.append(Call(anyio.current_time(), params.method, route))

    trace.on_request_start.append(on_start)
    emulated = EmulatorConfig(endpoints={"ep": config}, api_keys=(KEY,))
    async with Emulator(emulated) as emulator, aiohttp.ClientSession(trace_configs=[trace]) as http:
        yield Seeded(emulator, emulator.endpoint("ep"), http, calls)


def _relative(calls: list[Call]) -> list[tuple[float, str, str]]:
    start = calls[0].at
    return [(round(call.at - start, 3), call.method, call.path) for call in calls]


async def test_one_cold_generation_makes_the_calls_written_in_the_seeds_code(
    seeded: Seeded,
) -> None:
    result = await seeded.backend().generate(PARAMS)

    expected = [
        # WakeupAndWaitForWorkerAsync -> WakeupWorkerAsync (Backend.cs:525, ApiClient.cs:20-33)
        (0.0, "POST", "run"),
        # PollJobStatusAsync (ApiClient.cs:173-198): /status at once, then every 1000 ms until
        # COMPLETED; the worker is ready at 34.5 s, so the poll at 35 s sees it done
        *[(float(second), "GET", "status") for second in range(36)],
        # Task.Delay(2000) (Backend.cs:526), then a NEW /runsync ready job (ApiClient.cs:36-57)
        (37.0, "POST", "runsync"),
        # WaitForWorkerBackendsLoadedAsync: ListBackends, no delay when none loads (:100-121)
        (37.0, "POST", "/API/ListBackends"),
        # GenerateText2Image (:425); 4 steps at 1 s a step
        (37.0, "POST", "/API/GenerateText2Image"),
        # finally: ShutdownWorkerAsync, a /runsync shutdown job (:447, ApiClient.cs:96-117)
        (41.0, "POST", "runsync"),
    ]
    assert _relative(seeded.calls) == expected
    jobs = [job.input for job in seeded.endpoint.jobs.values()]
    assert jobs == [
        {"action": "wakeup", "duration": 180, "interval": 30},  # keepaliveDuration 180 (:380)
        {"action": "ready"},
        {"action": "shutdown"},
    ]
    routes = [route for _method, route, _status in seeded.endpoint.api_calls]
    assert routes == ["run", *["status"] * 36, "runsync", "runsync"]  # counted at the emulator
    assert (result.images, result.cold_start) == (1, True)


async def test_a_warm_generation_still_wakes_waits_two_seconds_and_checks_readiness(
    seeded: Seeded,
) -> None:
    backend = seeded.backend()
    await backend.generate(PARAMS)
    seeded.calls.clear()

    result = await backend.generate(PARAMS)  # within the endpoint's 5 s idle timeout

    assert _relative(seeded.calls) == [
        (0.0, "POST", "run"),
        (0.0, "GET", "status"),  # the idle worker ran the wake-up at once
        (2.0, "POST", "runsync"),
        (2.0, "POST", "/API/ListBackends"),
        (2.0, "POST", "/API/GenerateText2Image"),
        (6.0, "POST", "runsync"),
    ]
    assert result.cold_start is False
    assert len(seeded.endpoint.ledger) == 1


async def test_swarmui_runs_the_backends_generations_one_at_a_time(seeded: Seeded) -> None:
    backend = seeded.backend()
    finished: list[float] = []

    async def generate() -> None:
        await backend.generate(PARAMS)
        finished.append(anyio.current_time())

    async with anyio.create_task_group() as group:
        for _ in range(3):
            group.start_soon(generate)

    runs = [call for call in seeded.calls if call.path == "run"]
    shutdowns = [call for call in seeded.calls if call.path == "runsync"][1::2]
    assert len(runs) == 3
    for wake, previous_shutdown in zip(runs[1:], shutdowns, strict=False):
        assert wake.at >= previous_shutdown.at  # the next wakes only once the last let go
    assert len(seeded.endpoint.ledger) == 1  # one worker served all three, in turn
    assert finished == sorted(finished)

"""The engine end to end on protocol v1, against the emulator over real loopback HTTP.

Every test runs in looptime's virtual time: cold starts of minutes cost milliseconds.
"""

from __future__ import annotations

import io
from contextlib import AbstractAsyncContextManager
from typing import Any

import anyio
import pytest
from PIL import Image
from support import ENDPOINT, KEY, World, idled_out
from support import world as support_world

from orchestrator import (
    GenerationFailedError,
    GenerationTimeoutError,
    MissingApiKeyError,
    NoImagesError,
    Orchestrator,
    Phase,
    ProgressEvent,
    RunPodAuthError,
    Settings,
    Stage,
    StaticKeys,
    WorkerNotReadyError,
)
from orchestrator.emulator import EmulatedEndpoint, EmulatedJob, EndpointConfig
from orchestrator.emulator.swarm import SwarmConfig

pytestmark = pytest.mark.anyio

COLD_PATH = ("Idle", "Waking", "Polling", "Ready", "Generating", "ShuttingDown", "Done")
PARAMS = {"prompt": "a lighthouse at dawn", "width": 640, "height": 384, "steps": 10}


def world(
    endpoint: EndpointConfig | None = None, **settings: Any
) -> AbstractAsyncContextManager[World]:
    """These tests pin the release right after the last generation; the idle window that
    keeps a v1 worker warm has its own tests below."""
    settings.setdefault("IdleTimeoutSec", 0)
    return support_world(endpoint, **settings)


def jobs_by_action(endpoint: EmulatedEndpoint, action: str) -> list[EmulatedJob]:
    return [job for job in endpoint.jobs.values() if job.input.get("action") == action]


async def test_a_cold_start_goes_idle_to_done_and_releases_the_worker() -> None:
    async with world(EndpointConfig(cold_start_s=45.0)) as w:
        result = await w.orch.generate({**PARAMS, "seed": 7}, images=2, on_progress=w.record)

        assert result.path == COLD_PATH
        assert result.cold_start is True
        assert [image.seed for image in result.images] == [7, 8]
        for image in result.images:
            with Image.open(io.BytesIO(image.data)) as decoded:
                assert decoded.format == "PNG"
                assert decoded.size == (640, 384)
        (keepalive,) = jobs_by_action(w.endpoint, "keepalive")
        assert keepalive.status == "CANCELLED"
        assert all(job.status in {"COMPLETED", "CANCELLED"} for job in w.endpoint.jobs.values())
        assert await idled_out(w.endpoint) == []
        assert result.timings.startup >= 45.0
        assert result.runpod_delay_ms is not None and result.runpod_delay_ms >= 45_000
        assert result.worker_id == keepalive.worker_id
        stages = [event.stage for event in w.events]
        assert stages[0] is Stage.BOOTING and stages[-1] is Stage.DONE
        assert Stage.QUEUED not in stages  # MaxConcurrent had room
        assert Stage.BOOTING in stages and Stage.GENERATING in stages


async def test_a_120_s_cold_start_generates_on_the_virtual_clock() -> None:
    """Its wall-clock time is measured by ``make bench`` (benchmarks/virtual_time.py)."""
    async with world(EndpointConfig(cold_start_s=120.0), StartupTimeoutSec=300) as w:
        result = await w.orch.generate(PARAMS)
    assert result.timings.startup >= 120.0


async def test_a_worker_never_ready_fails_after_exactly_the_startup_timeout() -> None:
    async with world(EndpointConfig(cold_start_s=float("inf")), StartupTimeoutSec=90) as w:
        start = anyio.current_time()
        with pytest.raises(WorkerNotReadyError) as caught:
            await w.orch.generate(PARAMS, on_progress=w.record)

        releasing = next(e for e in w.events if e.stage is Stage.RELEASING)
        assert releasing.elapsed == pytest.approx(90.0)
        assert anyio.current_time() - start < 90.0 + 5
        error = caught.value
        assert error.phase is Phase.POLLING
        assert error.retryable is True
        assert "within 90 s" in str(error) and "max workers" in str(error)
        assert error.path == ("Idle", "Waking", "Polling", "ShuttingDown", "Failed")
        (wakeup,) = jobs_by_action(w.endpoint, "wakeup")
        assert wakeup.status == "CANCELLED"


async def test_a_generation_past_its_timeout_fails_in_generating_and_releases() -> None:
    slow = SwarmConfig(seconds_per_step=10.0)  # 10 steps = 100 s per image
    async with world(EndpointConfig(cold_start_s=5, swarm=slow), GenerationTimeoutSec=30) as w:
        with pytest.raises(GenerationTimeoutError) as caught:
            await w.orch.generate(PARAMS, on_progress=w.record)

        assert caught.value.phase is Phase.GENERATING
        assert caught.value.path[-2:] == ("ShuttingDown", "Failed")
        generating = next(e for e in w.events if e.stage is Stage.GENERATING)
        releasing = next(e for e in w.events if e.stage is Stage.RELEASING)
        assert releasing.elapsed - generating.elapsed == pytest.approx(30.0, abs=0.01)
        (keepalive,) = jobs_by_action(w.endpoint, "keepalive")
        assert keepalive.status == "CANCELLED"
        assert await idled_out(w.endpoint) == []


async def test_a_caller_cancelling_mid_generation_still_releases_the_worker() -> None:
    slow = SwarmConfig(seconds_per_step=10.0)
    async with world(EndpointConfig(cold_start_s=5, swarm=slow)) as w:
        with anyio.move_on_after(60) as scope:
            await w.orch.generate(PARAMS, on_progress=w.record)

        assert scope.cancelled_caught
        assert w.events[-1].stage is Stage.CANCELLED
        assert Stage.GENERATING in [e.stage for e in w.events]
        (keepalive,) = jobs_by_action(w.endpoint, "keepalive")
        assert keepalive.status == "CANCELLED"
        assert await idled_out(w.endpoint) == []
        assert w.orch.admission.in_flight == 0


async def test_cancelling_while_queued_behind_max_concurrent_leaves_no_trace() -> None:
    async with world(EndpointConfig(cold_start_s=20), MaxConcurrent=1) as w:
        events: list[ProgressEvent] = []
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(w.orch.generate, PARAMS)
            await anyio.sleep(1)
            with anyio.move_on_after(5):
                await w.orch.generate(PARAMS, on_progress=events.append)
        assert [e.stage for e in events] == [Stage.QUEUED, Stage.CANCELLED]
        assert len(jobs_by_action(w.endpoint, "wakeup")) == 1


async def test_a_wrong_key_fails_at_once_with_no_retry() -> None:
    async with world(key="rpa_WRONG_KEY_PLANTED") as w:
        with pytest.raises(RunPodAuthError) as caught:
            await w.orch.generate(PARAMS)
        assert caught.value.status == 401
        assert caught.value.retryable is False
        assert "key" in str(caught.value)
        assert "rpa_WRONG_KEY_PLANTED" not in str(caught.value) + repr(caught.value)
        assert len(w.endpoint.api_calls) == 1
        assert w.endpoint.jobs == {}


async def test_two_503s_on_run_are_retried_and_the_generation_succeeds() -> None:
    async with world(EndpointConfig(cold_start_s=10)) as w:
        w.endpoint.faults.http_status("run", 503, times=2)
        result = await w.orch.generate(PARAMS)
        assert result.path == COLD_PATH
        run_statuses = [status for method, route, status in w.endpoint.api_calls if route == "run"]
        assert run_statuses[:3] == [503, 503, 200]


async def test_an_invalid_session_once_is_renewed_and_the_generation_succeeds() -> None:
    async with world(EndpointConfig(cold_start_s=10)) as w:
        w.endpoint.swarm_faults.invalid_session(times=1)
        result = await w.orch.generate(PARAMS)
        assert len(result.images) == 1


async def test_a_swarmui_error_fails_with_swarmuis_own_text() -> None:
    async with world(EndpointConfig(cold_start_s=10)) as w:
        w.endpoint.swarm_faults.generation_error("Model failed to load: out of VRAM")
        with pytest.raises(GenerationFailedError, match="out of VRAM") as caught:
            await w.orch.generate(PARAMS)
        assert caught.value.phase is Phase.GENERATING
        assert await idled_out(w.endpoint) == []


async def test_a_reply_without_images_is_the_seeds_no_images_error() -> None:
    async with world(EndpointConfig(cold_start_s=10)) as w:
        w.endpoint.swarm_faults.no_images()
        with pytest.raises(NoImagesError, match="No images returned"):
            await w.orch.generate(PARAMS)


async def test_http_transport_generates_too() -> None:
    async with world(EndpointConfig(cold_start_s=10), Transport="http") as w:
        result = await w.orch.generate({**PARAMS, "seed": 3}, images=2)
        assert [image.seed for image in result.images] == [3, 4]


async def test_runsync_wakeup_when_use_async_is_false() -> None:
    async with world(EndpointConfig(cold_start_s=200), UseAsync=False, StartupTimeoutSec=300) as w:
        result = await w.orch.generate(PARAMS)
        assert result.path == COLD_PATH
        (wakeup,) = jobs_by_action(w.endpoint, "wakeup")
        assert wakeup.id.startswith("sync-")
        assert any(route == "runsync" for _, route, _ in w.endpoint.api_calls)


async def test_a_missing_key_gives_the_seeds_message() -> None:
    async with world(key=None) as w:
        with pytest.raises(MissingApiKeyError) as caught:
            await w.orch.generate(PARAMS, user="ada")
        assert "RunPodApiKey" in str(caught.value) and "runpod_api" in str(caught.value)
        assert w.endpoint.api_calls == []


async def test_without_a_backend_key_the_users_own_key_is_used() -> None:
    async with world(EndpointConfig(cold_start_s=10), key=None) as w:
        settings = w.orch.settings
        async with Orchestrator(settings, keys=StaticKeys({"ada": KEY, "bob": "rpa_bob"})) as orch:
            result = await orch.generate(PARAMS, user="ada")
            assert len(result.images) == 1
            with pytest.raises(RunPodAuthError):
                await orch.generate(PARAMS, user="bob")
            with pytest.raises(MissingApiKeyError):
                await orch.generate(PARAMS, user="eve")


async def test_max_concurrent_two_with_five_requests_never_exceeds_two() -> None:
    async with world(EndpointConfig(cold_start_s=30, max_workers=5), MaxConcurrent=2) as w:
        peak = 0
        finished = 0

        def watch(event: ProgressEvent) -> None:
            nonlocal peak
            held = [j for j in jobs_by_action(w.endpoint, "keepalive") if j.status == "IN_PROGRESS"]
            peak = max(peak, w.orch.admission.in_flight, len(held))

        async def one(index: int) -> None:
            nonlocal finished
            result = await w.orch.generate({**PARAMS, "seed": index}, on_progress=watch)
            assert result.images[0].seed == index
            finished += 1

        async with anyio.create_task_group() as tasks:
            for index in range(5):
                tasks.start_soon(one, index)
        assert finished == 5
        assert peak == 2
        keepalives = jobs_by_action(w.endpoint, "keepalive")
        assert keepalives and all(job.status == "CANCELLED" for job in keepalives)
        assert await idled_out(w.endpoint) == []


async def test_concurrent_generations_share_one_v1_worker() -> None:
    # Two keepalives on two workers can swap workers, and cancelling "mine" would stop the
    # other generation's worker (worker-protocols.md): so v1 holds one worker per endpoint.
    async with world(EndpointConfig(cold_start_s=30, max_workers=3)) as w:
        results = []

        async def one(seed: int) -> None:
            results.append(await w.orch.generate({**PARAMS, "seed": seed}))

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(one, 1)
            tasks.start_soon(one, 2)
        assert sorted(r.images[0].seed or -1 for r in results) == [1, 2]
        assert len({r.worker_id for r in results}) == 1
        assert len(jobs_by_action(w.endpoint, "wakeup")) == 1
        (keepalive,) = jobs_by_action(w.endpoint, "keepalive")
        assert keepalive.status == "CANCELLED"
        assert len(w.endpoint.workers) == 1
        assert await idled_out(w.endpoint) == []


async def test_a_generation_arriving_while_the_worker_is_held_reuses_it_warm() -> None:
    slow = SwarmConfig(seconds_per_step=2.0)  # 10 steps = 20 s
    async with world(EndpointConfig(cold_start_s=30, swarm=slow)) as w:
        results = {}
        first_generating = anyio.Event()

        def watch(event: ProgressEvent) -> None:
            if event.stage is Stage.GENERATING:
                first_generating.set()

        async def one(name: str) -> None:
            on_progress = watch if name == "first" else None
            results[name] = await w.orch.generate(PARAMS, on_progress=on_progress)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(one, "first")
            await first_generating.wait()
            tasks.start_soon(one, "second")
        assert results["first"].cold_start is True
        assert results["second"].cold_start is False
        assert results["second"].path == ("Idle", "Ready", "Generating", "ShuttingDown", "Done")
        assert results["second"].timings.startup < 1.0
        assert results["second"].runpod_delay_ms is None
        assert len(jobs_by_action(w.endpoint, "wakeup")) == 1
        assert await idled_out(w.endpoint) == []


async def test_the_orchestrator_requires_an_endpoint_id() -> None:
    with pytest.raises(Exception, match="EndpointId"):
        Orchestrator(Settings())
    assert ENDPOINT


async def test_a_worker_held_past_its_keepalive_is_renewed_on_the_same_worker() -> None:
    slow = SwarmConfig(seconds_per_step=25.0)  # 10 steps = 250 s per image
    async with world(EndpointConfig(cold_start_s=30, swarm=slow)) as w:
        # keepalive duration = GenerationTimeoutSec 300 + ReleaseTimeoutSec 30 + 60 = 390 s
        results = []

        async def one() -> None:
            results.append(await w.orch.generate(PARAMS))

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(one)
            await anyio.sleep(250)
            tasks.start_soon(one)  # ends near t=500, past the first keepalive's end
        assert len(results) == 2
        keepalives = jobs_by_action(w.endpoint, "keepalive")
        assert len(keepalives) == 2
        assert {job.status for job in keepalives} == {"COMPLETED", "CANCELLED"}
        assert {job.worker_id for job in keepalives} == {results[0].worker_id}
        assert len(w.endpoint.workers) == 1
        assert await idled_out(w.endpoint) == []

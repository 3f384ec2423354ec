"""A user's own RunPod handler as the emulator's workers (runpod-api.md §6, §8 items 25-26).

Each handler in ``tests/handlers/`` is a plain script ending in the official, unmodified
``runpod.serverless.start`` loop; the emulator runs it with the SDK's interpreter
(``.venv-sdk``) as a real OS process per worker, and the tests drive jobs over real HTTP from
the client side (``/run``, ``/status``, ``/stream``, ``/cancel``).

Real processes need a real-time loop, so this module runs on plain asyncio, not looptime. The
emulated timings are small (no cold start, 1 s pings); ``import runpod`` (~2 s of CPU per
process) dominates, so the handlers whose workers survive their tests share one emulator whose
workers all boot at once (``shared``); the tests that stop, kill or recycle workers have their own.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

import aiohttp
import anyio
import pytest
from sdk_env import sdk_env, sdk_python
from support import state_of

from orchestrator.emulator import (
    EmulatedEndpoint,
    Emulator,
    EmulatorConfig,
    EndpointConfig,
    PolicyLimits,
    WorkerState,
)

pytestmark = pytest.mark.anyio

HANDLERS: Final = Path(__file__).parent / "handlers"
CLIENT: Final = {"Authorization": "test-key"}
WITHIN_S: Final = 20.0  # wall-clock bound of every wait (a worker boots in ~2 s)
TERMINAL: Final = ("COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT")


SHARED: Final = {
    "sync": "sync_handler.py",
    "async": "async_handler.py",
    "gen": "generator_handler.py",
    "raising": "raising_handler.py",
    "error": "error_handler.py",
    "progress": "progress_handler.py",
}
"""Endpoint id -> handler script, of the shared emulator."""


@pytest.fixture(scope="module")
def anyio_backend() -> tuple[str, dict[str, Any]]:
    """Plain asyncio in real time: these tests run real processes (see the module docstring).

    Given as a ``loop_factory``, the loop is never installed as the thread's current loop, so
    pytest-asyncio has none to "restore" afterwards (it would leave an unclosed loop behind).
    """
    return ("asyncio", {"loop_factory": asyncio.new_event_loop})


def handler_endpoint(script: str, **overrides: Any) -> EndpointConfig:
    """An endpoint whose workers run ``tests/handlers/<script>`` with the official SDK."""
    settings: dict[str, Any] = {
        "handler_command": (str(sdk_python()), str(HANDLERS / script)),
        "handler_env": {"HOME": sdk_env()["HOME"]},  # no developer ~/.runpod/config.toml
        "cold_start_s": 0.0,
        "queue_delay_s": 0.0,
        "idle_timeout_s": 30.0,
        "ping_interval_s": 1.0,
        "dead_after_missed_pings": 10.0,  # lenient on a loaded machine (virtual-time tests pin it)
        "handler_stop_grace_s": 5.0,
    }
    settings.update(overrides)
    return EndpointConfig(**settings)


@asynccontextmanager
async def hosting(**endpoints: EndpointConfig) -> AsyncIterator[Emulator]:
    async with Emulator(EmulatorConfig(endpoints=endpoints)) as emulator:
        yield emulator


@pytest.fixture(scope="module")
async def shared() -> AsyncIterator[Emulator]:
    """One emulator hosting every :data:`SHARED` handler, one worker each, booted at once."""
    endpoints = {ep: handler_endpoint(script, min_workers=1) for ep, script in SHARED.items()}
    async with hosting(**endpoints) as emulator:
        yield emulator


async def until(condition: Callable[[], bool], within_s: float = WITHIN_S) -> None:
    """Wait (wall clock) until ``condition()`` holds; fail after ``within_s``."""
    with anyio.fail_after(within_s):
        while not condition():  # noqa: ASYNC110 (plain attributes, no event to wait on)
            await anyio.sleep(0.05)


async def call(emulator: Emulator, method: str, path: str, body: Any = None) -> dict[str, Any]:
    """A client API call (``/run``, ``/status/...``) with the account key."""
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method, f"{emulator.base_url}/{path}", json=body, headers=CLIENT
        ) as response,
    ):
        assert response.status == 200, await response.text()
        answer: dict[str, Any] = await response.json()
        return answer


async def submit(emulator: Emulator, endpoint_id: str, body: dict[str, Any]) -> str:
    job_id: str = (await call(emulator, "POST", f"{endpoint_id}/run", body))["id"]
    return job_id


async def wait_status(
    emulator: Emulator,
    endpoint_id: str,
    job_id: str,
    until_status: Callable[[dict[str, Any]], bool],
) -> dict[str, Any]:
    """Poll ``/status`` until ``until_status(job)`` holds; return that job object."""
    with anyio.fail_after(WITHIN_S):
        while True:
            job = await call(emulator, "GET", f"{endpoint_id}/status/{job_id}")
            if until_status(job):
                return job
            await anyio.sleep(0.05)


async def finished(emulator: Emulator, endpoint_id: str, job_id: str) -> dict[str, Any]:
    return await wait_status(emulator, endpoint_id, job_id, lambda job: job["status"] in TERMINAL)


def live_processes(group: int) -> list[int]:
    """The pids of the processes of process group ``group`` that are alive (not zombies)."""
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs /proc to list a process group")
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        state, pgrp = fields[0], int(fields[2])
        if pgrp == group and state != "Z":
            pids.append(int(stat.parent.name))
    return pids


def only_worker(endpoint: EmulatedEndpoint) -> Any:
    assert len(endpoint.workers) == 1, endpoint.workers
    return endpoint.workers[0]


async def test_sync_handler_serves_jobs_with_the_runpod_worker_environment(
    shared: Emulator,
) -> None:
    emulator, endpoint = shared, shared.endpoint("sync")
    first_id = await submit(emulator, "sync", {"input": {"prompt": "a fox"}})
    first = await finished(emulator, "sync", first_id)
    assert first["status"] == "COMPLETED", first
    worker = only_worker(endpoint)
    output = first["output"]
    assert output["echo"] == {"prompt": "a fox"}
    assert output["pid"] == worker.process_id
    routes = f"{emulator.base_url}/sync"
    assert output["env"] == {
        "RUNPOD_POD_ID": worker.id,
        "RUNPOD_ENDPOINT_ID": "sync",
        "RUNPOD_WEBHOOK_GET_JOB": f"{routes}/job-take/$ID?gpu=EMULATED",
        "RUNPOD_WEBHOOK_POST_OUTPUT": f"{routes}/job-done/$RUNPOD_POD_ID/$ID?gpu=EMULATED",
        "RUNPOD_WEBHOOK_POST_STREAM": f"{routes}/job-stream/$RUNPOD_POD_ID/$ID?gpu=EMULATED",
        "RUNPOD_WEBHOOK_PING": f"{routes}/ping/$RUNPOD_POD_ID?gpu=EMULATED",
        "RUNPOD_PING_INTERVAL": "1000",
        "RUNPOD_SKIP_GPU_CHECK": "true",
        "RUNPOD_SKIP_AUTO_SYSTEM_CHECKS": "true",
    }
    assert first["workerId"] == worker.id

    second_id = await submit(emulator, "sync", {"input": {"prompt": "a hen"}})
    second = await finished(emulator, "sync", second_id)
    assert (second["workerId"], second["output"]["pid"]) == (worker.id, worker.process_id)
    await until(lambda: worker.pings > 0)
    assert worker.state is WorkerState.IDLE
    assert endpoint.health()["workers"]["idle"] == 1
    entry = endpoint.ledger[0]
    assert entry.open
    assert worker.ready_at is not None
    assert entry.boot_s == pytest.approx(worker.ready_at - worker.started_at, abs=0.01)
    assert entry.boot_s > 0.5  # starting the process (import runpod) is its cold start
    assert entry.execution_s > 0


async def test_async_and_generator_handlers(shared: Emulator) -> None:
    emulator = shared
    doubled_id = await submit(emulator, "async", {"input": {"n": 21}})
    streamed_id = await submit(emulator, "gen", {"input": {"count": 3}})
    doubled = await finished(emulator, "async", doubled_id)
    assert (doubled["status"], doubled["output"]) == ("COMPLETED", {"doubled": 42})

    chunks: list[Any] = []
    with anyio.fail_after(WITHIN_S):
        while True:
            page = await call(emulator, "GET", f"gen/stream/{streamed_id}")
            chunks += [chunk["output"] for chunk in page["stream"]]
            if page["status"] in TERMINAL and not page["stream"]:
                break
            await anyio.sleep(0.05)
    assert chunks == [{"chunk": 0}, {"chunk": 1}, {"chunk": 2}]  # each exactly once
    assert page["status"] == "COMPLETED"


async def test_a_raising_handler_and_an_error_result_fail_the_job(shared: Emulator) -> None:
    emulator = shared
    raised_id = await submit(emulator, "raising", {"input": {"prompt": "x"}})
    refused_id = await submit(emulator, "error", {"input": {"model": "sd9"}})
    raised = await finished(emulator, "raising", raised_id)
    assert raised["status"] == "FAILED"
    error = json.loads(raised["error"])  # the SDK's JSON error string (spec §6.4)
    assert "ValueError" in error["error_type"]
    assert error["error_message"] == "cannot render 'x'"
    assert error["worker_id"] == raised["workerId"]

    refused = await finished(emulator, "error", refused_id)
    assert (refused["status"], refused["error"]) == ("FAILED", "no such model: sd9")
    for endpoint_id in ("raising", "error"):  # a failed job does not take its worker down
        assert only_worker(emulator.endpoint(endpoint_id)).state is WorkerState.IDLE


async def test_progress_update_shows_in_status_while_the_job_runs(
    shared: Emulator, tmp_path: Path
) -> None:
    emulator, release = shared, tmp_path / "release"
    job_id = await submit(emulator, "progress", {"input": {"release": str(release)}})
    progress = await wait_status(emulator, "progress", job_id, lambda job: "output" in job)
    assert (progress["status"], progress["output"]) == ("IN_PROGRESS", {"step": 1, "of": 2})
    worker = only_worker(emulator.endpoint("progress"))
    await until(lambda: worker.ping_job_ids == (job_id,))  # pings name the running job
    release.touch()
    done = await finished(emulator, "progress", job_id)
    assert (done["status"], done["output"]) == ("COMPLETED", {"step": 2, "of": 2})


async def test_refresh_worker_gets_a_fresh_process_after_each_job() -> None:
    async with hosting(ep=handler_endpoint("refresh_handler.py")) as emulator:
        first_id = await submit(emulator, "ep", {"input": {}})
        first = await finished(emulator, "ep", first_id)
        worker = only_worker(emulator.endpoint("ep"))
        first_pid = first["output"]["pid"]
        second_id = await submit(emulator, "ep", {"input": {}})
        second = await finished(emulator, "ep", second_id)
        assert second["status"] == "COMPLETED"
        assert second["workerId"] == first["workerId"] == worker.id  # recycled, not replaced
        assert second["output"]["pid"] != first_pid
        assert live_processes(first_pid) == []  # the old process and its ping process are gone
        assert worker.exit_codes[0] == 0  # it shut down cleanly
        boot_s = emulator.endpoint("ep").ledger[0].boot_s
        assert boot_s > first["delayTime"] / 1000 + 0.5  # the second boot is billed too


async def test_cancel_stops_the_running_job_alone_and_the_worker_serves_on_warm() -> None:
    # runpod SDK 1.12 rp_scale.monitor_stop_signals: the stop channel cancels that job's task;
    # the worker process goes on taking jobs until it idles out.
    ep = handler_endpoint("async_handler.py", idle_timeout_s=3.0)
    async with hosting(ep=ep) as emulator:
        endpoint = emulator.endpoint("ep")
        job_id = await submit(emulator, "ep", {"input": {"n": 1, "sleep_s": 60}})
        running = await wait_status(emulator, "ep", job_id, lambda job: "output" in job)
        assert running["output"] == {"sleeping": 60}  # the handler runs (not just queued)
        worker = only_worker(endpoint)
        pid = worker.process_id
        cancelled = await call(emulator, "POST", f"ep/cancel/{job_id}")
        assert cancelled["status"] == "CANCELLED"
        assert worker.state is WorkerState.IDLE
        next_id = await submit(emulator, "ep", {"input": {"n": 21}})
        served = await finished(emulator, "ep", next_id)
        assert served["output"] == {"doubled": 42}
        assert served["workerId"] == worker.id and worker.process_id == pid  # same process
        assert (await call(emulator, "GET", f"ep/status/{job_id}"))["status"] == "CANCELLED"
        await until(lambda: bool(worker.exit_codes))  # idled out, then stopped
        assert state_of(worker) is WorkerState.STOPPED
        assert worker.exit_codes == [0]
        assert live_processes(pid) == []
        assert len(endpoint.workers) == 1


async def test_execution_timeout_times_out_the_job_and_stops_the_worker() -> None:
    quick = PolicyLimits(execution_timeout_ms=(1_500, 604_800_000))  # RunPod's minimum is 5 s
    async with hosting(ep=handler_endpoint("async_handler.py", policy_limits=quick)) as emulator:
        policy = {"executionTimeout": 1500}
        job_id = await submit(emulator, "ep", {"input": {"n": 1, "sleep_s": 60}, "policy": policy})
        timed_out = await finished(emulator, "ep", job_id)
        assert timed_out["status"] == "TIMED_OUT"
        assert 1500 <= timed_out["executionTime"] < 2500
        worker = only_worker(emulator.endpoint("ep"))
        assert worker.state is WorkerState.STOPPED
        await until(lambda: bool(worker.exit_codes))
        assert live_processes(worker.process_id) == []


async def test_a_crashing_process_fails_its_job_with_exit_code_and_stderr(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="swarmpod.emulator")
    async with hosting(ep=handler_endpoint("crash_handler.py", unhealthy_restart_s=60)) as emulator:
        endpoint = emulator.endpoint("ep")
        job_id = await submit(emulator, "ep", {"input": {}})
        crashed = await finished(emulator, "ep", job_id)
        assert crashed["status"] == "FAILED"
        assert "exited with code 3" in crashed["error"]
        assert "CUDA error: an illegal memory access was encountered" in crashed["error"]
        worker = only_worker(endpoint)
        assert worker.state is WorkerState.UNHEALTHY
        assert endpoint.health()["workers"]["unhealthy"] == 1
        await until(lambda: worker.exit_codes == [3])
        assert live_processes(worker.process_id) == []  # its ping process went with it
    lines = [record.getMessage() for record in caplog.records]
    assert (
        f"[Emulator] worker {worker.id} ! CUDA error: an illegal memory access was encountered"
        in lines
    )
    assert not any("wk_" in line for line in lines)  # no worker key (wk_...) in the log


async def test_closing_the_emulator_leaves_no_process_behind() -> None:
    async with hosting(ep=handler_endpoint("sync_handler.py", min_workers=2)) as emulator:
        endpoint = emulator.endpoint("ep")
        await until(lambda: len(endpoint.workers) == 2)
        await until(lambda: all(w.state is WorkerState.IDLE and w.pings for w in endpoint.workers))
        groups = [w.process_id for w in endpoint.workers]
        for group in groups:
            assert group is not None
            assert len(live_processes(group)) >= 2  # the worker and the SDK's ping process
    for group in groups:
        assert group is not None
        assert live_processes(group) == []
    assert [w.state for w in endpoint.workers] == [WorkerState.STOPPED] * 2


# -- swarmpod's own engine against a hosted SwarmUI worker (§8 item 26) ------------------------


async def test_the_engine_generates_through_a_v1_worker_on_the_official_loop() -> None:
    from orchestrator import Orchestrator, Settings

    endpoint = handler_endpoint("v1_swarm_handler.py", idle_timeout_s=5.0)
    async with hosting(v1=endpoint) as emulator:
        settings = Settings.load(
            env={},
            overrides={
                "EndpointId": "v1",
                "RunPodBaseUrl": emulator.base_url,
                "RunPodApiKey": "test-key",
                "PollIntervalMs": 200,
                "StartupTimeoutSec": WITHIN_S,
            },
        )
        async with Orchestrator(settings) as orch:
            with anyio.fail_after(2 * WITHIN_S):
                result = await orch.generate({"prompt": "a hosted fox", "steps": 2}, images=2)
        hosted = emulator.endpoint("v1")
        actions = [job.input.get("action") for job in hosted.jobs.values()]
        assert len(result.images) == 2
        assert result.cold_start
        assert result.worker_id == hosted.workers[0].id
        # WorkerProtocol auto: one lease probe, refused by the v1 handler, then v1 on that worker
        assert sorted(actions) == ["keepalive", "lease", "wakeup"]
        assert len(hosted.workers) == 1
        assert orch.protocol == "v1"
        keepalive = next(j for j in hosted.jobs.values() if j.input.get("action") == "keepalive")
        assert keepalive.status == "CANCELLED"  # the release: the worker process is stopped
        await until(lambda: not hosted.running_workers())

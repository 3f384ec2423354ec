"""The official runpod SDK (1.12.0, in ``.venv-sdk``) works against the emulator unchanged.

runpod-api.md §5.3 recipe and §8 items 1-3, 6-9, 12, 14, 15, 18, 27, 28: ``runpod.Endpoint`` and
``runpod.AsyncioEndpoint`` run, poll, wait, stream, cancel, purge and read health through the
emulator, and hit a wrong key and rate limits. ``tests/sdk_scripts/crosscheck.py`` drives each
client in a subprocess of the SDK's interpreter and prints what the SDK returned or raised; the
tests below hold those observations against the emulator's own state.

The emulator runs on a real-time loop (not looptime): the SDK sleeps 1 s of wall time between
polls, so the endpoints boot in 0.5 s and keepalives last 1-2 s. Both scripts run at once, each on
its own endpoint, and once for the whole module (~1.4 s of ``import runpod`` each).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import anyio
import pytest
from anyio.abc import ByteReceiveStream
from sdk_env import RUNPOD_SDK_VERSION, sdk_env, sdk_python

from orchestrator.emulator import (
    EmulatedEndpoint,
    EmulatedJob,
    Emulator,
    EmulatorConfig,
    EndpointConfig,
    PolicyLimits,
    RateLimits,
    WorkerState,
)

SCRIPT: Final = Path(__file__).parent / "sdk_scripts" / "crosscheck.py"
SCRIPT_TIMEOUT_S: Final = 60.0
KEY: Final = "sdk-crosscheck-key"
ENDPOINTS: Final = {"sync": "sdk-sync-ep", "async": "sdk-async-ep"}
LIMITED: Final = "sdk-limited-ep"
CLIENTS: Final = ("sync", "async")

QUICK: Final = EndpointConfig(
    max_workers=1,  # jobs sent while one runs stay IN_QUEUE
    scaler="request_count",  # a worker starts as soon as a job arrives
    cold_start_s=0.5,  # long enough for status() to see IN_QUEUE
    idle_timeout_s=60.0,
    # the policy flow times a job out after 500 ms of real time, below RunPod's 5 s minimum
    policy_limits=PolicyLimits(execution_timeout_ms=(500, 604_800_000)),
)
TIGHT: Final = EndpointConfig(
    max_workers=0,  # jobs only queue: this endpoint is for the rate limiter
    rate_limits=RateLimits(run=1, status=1, window_s=1.0),
)
STREAM_CHUNKS: Final = ("first chunk", {"second": 2})
"""What the stream probe job yields, in order (the v1 image itself never streams)."""


@dataclass
class ScriptRun:
    """One SDK script's run: its exit code, stderr, and the checks it reported by name."""

    client: str
    returncode: int | None = None
    stderr: str = ""
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    stray_stdout: list[str] = field(default_factory=list)


@dataclass
class CrossCheck:
    """The emulator after both SDK scripts ran, and what each script reported."""

    emulator: Emulator
    runs: dict[str, ScriptRun]

    def endpoint(self, client: str) -> EmulatedEndpoint:
        return self.emulator.endpoint(ENDPOINTS[client])

    def job(self, client: str, job_id: str) -> EmulatedJob:
        job = self.endpoint(client).jobs.get(job_id)
        assert job is not None, f"the emulator no longer has job {job_id}"
        return job

    def observed(self, client: str, check: str) -> dict[str, Any]:
        """What the ``client`` script saw in ``check``; fails readably if it crashed."""
        run = self.runs[client]
        got = run.checks.get(check)
        if got is None:
            pytest.fail(
                f"the {client} SDK script reported no {check!r} check "
                f"(exit code {run.returncode}); its stderr ends with:\n{run.stderr[-4000:]}"
            )
        if "crashed" in got:
            pytest.fail(f"{client} {check}: the SDK raised {got['crashed']}\n{got['traceback']}")
        return got


async def _drain(stream: ByteReceiveStream | None, into: bytearray) -> None:
    if stream is not None:
        async for chunk in stream:
            into += chunk


async def _run_script(python: Path, run: ScriptRun, args: list[str]) -> None:
    command = [str(python), str(SCRIPT), "--client", run.client, *args]
    stdout, stderr = bytearray(), bytearray()
    async with await anyio.open_process(command, env=sdk_env(), stdin=subprocess.DEVNULL) as proc:
        with anyio.move_on_after(SCRIPT_TIMEOUT_S) as deadline:
            async with anyio.create_task_group() as task_group:
                task_group.start_soon(_drain, proc.stdout, stdout)
                task_group.start_soon(_drain, proc.stderr, stderr)
                await proc.wait()
        if deadline.cancelled_caught:
            proc.kill()
            await proc.wait()
            stderr += f"\n[killed: still running after {SCRIPT_TIMEOUT_S:g} s]".encode()
    run.returncode = proc.returncode
    run.stderr = stderr.decode(errors="replace")
    for line in stdout.decode(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if isinstance(record, dict) and "check" in record:
            run.checks[record.pop("check")] = record
        else:
            run.stray_stdout.append(line)


async def _stream_into_probe(endpoint: EmulatedEndpoint) -> None:
    """Play a generator handler: the stream probe job yields STREAM_CHUNKS once it runs."""

    def probe() -> EmulatedJob | None:
        for job in endpoint.jobs.values():
            if isinstance(job.input, dict) and job.input.get("stream_probe"):
                return job if job.status == "IN_PROGRESS" else None
        return None

    await endpoint.wait_until(lambda: probe() is not None, SCRIPT_TIMEOUT_S)
    job = probe()
    if job is not None:
        for chunk in STREAM_CHUNKS:
            endpoint.emit_stream(job.id, chunk)


@pytest.fixture(scope="module")
def anyio_backend() -> tuple[str, dict[str, Any]]:
    """Plain asyncio, real time: looptime cannot skip the SDK's wall-clock sleeps.

    An explicit loop factory keeps the loop anyio's own (created and closed by its runner);
    plain ``"asyncio"`` leaves an unclosed loop behind under pytest-asyncio.
    """
    return ("asyncio", {"loop_factory": asyncio.new_event_loop})


@pytest.fixture(scope="module")
def sdk_interpreter() -> Path:
    return sdk_python()


@pytest.fixture(scope="module")
async def crosscheck(anyio_backend: object, sdk_interpreter: Path) -> AsyncIterator[CrossCheck]:
    config = EmulatorConfig(
        endpoints={**{ep: QUICK for ep in ENDPOINTS.values()}, LIMITED: TIGHT}, api_keys=(KEY,)
    )
    async with Emulator(config) as emulator:
        runs = {client: ScriptRun(client) for client in CLIENTS}
        common = ["--base-url", emulator.base_url, "--key", KEY]
        async with anyio.create_task_group() as probes:
            for endpoint_id in ENDPOINTS.values():
                probes.start_soon(_stream_into_probe, emulator.endpoint(endpoint_id))
            async with anyio.create_task_group() as scripts:
                for client, endpoint_id in ENDPOINTS.items():
                    args = [*common, "--endpoint", endpoint_id]
                    if client == "sync":
                        args += ["--limited-endpoint", LIMITED]
                    scripts.start_soon(_run_script, sdk_interpreter, runs[client], args)
            probes.cancel_scope.cancel()
        yield CrossCheck(emulator, runs)


# -- the scripts themselves ------------------------------------------------------------------


@pytest.mark.parametrize("client", CLIENTS)
def test_the_sdk_script_runs_the_pinned_release_and_exits_cleanly(
    crosscheck: CrossCheck, client: str
) -> None:
    run = crosscheck.runs[client]
    assert run.returncode == 0, run.stderr[-4000:]
    assert crosscheck.observed(client, "sdk") == {"version": RUNPOD_SDK_VERSION}
    assert run.stray_stdout == []


# -- run / status / output (§8 items 1, 6) ---------------------------------------------------


@pytest.mark.parametrize("client", CLIENTS)
def test_status_moves_from_in_queue_through_in_progress_to_completed(
    crosscheck: CrossCheck, client: str
) -> None:
    assert crosscheck.observed(client, "lifecycle")["statuses"] == ["IN_QUEUE", "IN_PROGRESS"]
    done = crosscheck.observed(client, "output")
    assert done["statuses"] == ["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]
    assert crosscheck.job(client, done["id"]).status == "COMPLETED"


@pytest.mark.parametrize("client", CLIENTS)
def test_output_waits_for_the_v1_keepalive_output(crosscheck: CrossCheck, client: str) -> None:
    done = crosscheck.observed(client, "output")
    job = crosscheck.job(client, done["id"])
    worker = next(w for w in crosscheck.endpoint(client).workers if w.id == job.worker_id)
    assert done["returned"] == job.output
    assert done["returned"]["success"] is True
    assert done["returned"]["duration"] == 2
    assert done["returned"]["worker_id"] == worker.id
    assert done["returned"]["public_url"] == worker.public_url


# -- run_sync (§8 items 7, 8, 9) -------------------------------------------------------------


def _sync_job(endpoint: EmulatedEndpoint, job_input: dict[str, Any]) -> EmulatedJob:
    (job,) = [j for j in endpoint.jobs.values() if j.sync and j.input == job_input]
    return job


def test_run_sync_returns_the_handler_output(crosscheck: CrossCheck) -> None:
    returned = crosscheck.observed("sync", "run_sync")["returned"]
    job = _sync_job(crosscheck.endpoint("sync"), {"action": "health"})
    assert job.id.startswith("sync-")
    assert returned == job.output
    assert returned["healthy"] is True


def test_run_sync_of_a_failed_job_returns_none_and_drops_the_error(
    crosscheck: CrossCheck,
) -> None:
    assert crosscheck.observed("sync", "run_sync_failed") == {"returned": None}
    job = _sync_job(crosscheck.endpoint("sync"), {"action": "no-such-action"})
    assert (job.status, job.error) == ("FAILED", "Unknown action: no-such-action")


def test_run_sync_sends_a_truthy_input_as_given_so_policy_applies(crosscheck: CrossCheck) -> None:
    # executionTimeout 500 ms on a 5 s keepalive: TIMED_OUT is final, so run_sync returns None
    assert crosscheck.observed("sync", "policy") == {"returned": None}
    endpoint = crosscheck.endpoint("sync")
    job = _sync_job(endpoint, {"action": "keepalive", "duration": 5})
    assert (job.policy, job.status) == ({"executionTimeout": 500}, "TIMED_OUT")
    worker = next(w for w in endpoint.workers if w.id == job.worker_id)
    assert worker.state is WorkerState.STOPPED


# -- purge_queue and health (§8 items 14, 18) ------------------------------------------------


@pytest.mark.parametrize("client", CLIENTS)
def test_purge_queue_removes_only_the_queued_jobs(crosscheck: CrossCheck, client: str) -> None:
    purge = crosscheck.observed(client, "purge_queue")
    assert purge["queued_statuses"] == ["IN_QUEUE", "IN_QUEUE"]
    assert purge["returned"] == {"removed": 2, "status": "completed"}
    assert purge["running_status_after"] == "IN_PROGRESS"
    assert not set(purge["queued_ids"]) & set(crosscheck.endpoint(client).jobs)


def test_a_purged_job_is_forgotten_so_its_status_is_a_404(crosscheck: CrossCheck) -> None:
    purged = crosscheck.observed("sync", "purge_queue")["purged_status"]
    assert (purged["raised"], purged["http_status"]) == ("HTTPError", 404)


@pytest.mark.parametrize("client", CLIENTS)
def test_health_counts_the_running_job_and_its_worker(crosscheck: CrossCheck, client: str) -> None:
    # read while the first keepalive runs, right after the purge
    assert crosscheck.observed(client, "health")["returned"] == {
        "jobs": {"completed": 0, "failed": 0, "inProgress": 1, "inQueue": 0, "retried": 0},
        "workers": {
            "idle": 0,
            "initializing": 0,
            "ready": 0,
            "running": 1,
            "throttled": 0,
            "unhealthy": 0,
        },
    }


# -- stream (§8 items 15, 28) ----------------------------------------------------------------


@pytest.mark.parametrize("client", CLIENTS)
def test_stream_yields_each_chunk_once_then_ends(crosscheck: CrossCheck, client: str) -> None:
    stream = crosscheck.observed(client, "stream")
    assert stream["chunks"] == list(STREAM_CHUNKS)
    assert crosscheck.job(client, stream["id"]).status == "COMPLETED"


@pytest.mark.parametrize("client", CLIENTS)
def test_stream_of_a_job_that_never_streamed_ends_without_chunks(
    crosscheck: CrossCheck, client: str
) -> None:
    assert crosscheck.observed(client, "stream_without_chunks") == {"chunks": []}


def test_stream_of_a_cancelled_job_never_ends_in_the_sdk(crosscheck: CrossCheck) -> None:
    # FINAL_STATES lacks CANCELLED (§5.1): clients must bound Job.stream() themselves
    after_cancel = crosscheck.observed("async", "stream_after_cancel")
    assert (after_cancel["ended"], after_cancel["chunks"]) == (False, [])


# -- cancel (§8 item 12) ---------------------------------------------------------------------


@pytest.mark.parametrize("client", CLIENTS)
def test_cancel_stops_a_running_keepalive_and_its_worker_stays_up(
    crosscheck: CrossCheck, client: str
) -> None:
    cancel = crosscheck.observed(client, "cancel")
    assert cancel["status_before"] == "IN_PROGRESS"
    returned = cancel["returned"]
    assert (returned.get("id"), returned.get("status")) == (cancel["id"], "CANCELLED"), returned
    assert cancel["status_after"] == "CANCELLED"
    job = crosscheck.job(client, cancel["id"])
    endpoint = crosscheck.endpoint(client)
    worker = next(w for w in endpoint.workers if w.id == job.worker_id)
    assert job.status == "CANCELLED"
    assert job.id not in worker.job_ids
    # a per-job stop (SDK >= 1.10): the worker went on, idle, until its idle timeout at least
    assert job.finished_at is not None
    idled_out_at = job.finished_at + endpoint.config.idle_timeout_s
    assert worker.stopped_at is None or worker.stopped_at >= idled_out_at - 0.01


# -- input wrapping (§5.1, §8 item 28) -------------------------------------------------------


@pytest.mark.parametrize("client", CLIENTS)
def test_an_empty_input_is_wrapped_again_and_runs_as_a_wakeup(
    crosscheck: CrossCheck, client: str
) -> None:
    empty = crosscheck.observed(client, "empty_input")
    job = crosscheck.job(client, empty["id"])
    assert job.input == {"input": {}}
    assert empty["returned"] == job.output
    assert empty["returned"]["success"] is True
    assert empty["returned"]["worker_id"] == job.worker_id


def test_the_async_client_wraps_every_input(crosscheck: CrossCheck) -> None:
    empty = crosscheck.observed("async", "empty_input")
    bare = crosscheck.job("async", empty["bare_id"])
    assert bare.input == {}
    assert empty["bare_returned"] == bare.output


# -- a wrong key, an unknown endpoint (§8 items 2, 3) ----------------------------------------


def test_a_wrong_key_makes_the_sync_client_raise_401_runtime_error(crosscheck: CrossCheck) -> None:
    wrong = crosscheck.observed("sync", "wrong_key")
    for call in ("health", "run"):
        assert wrong[call]["raised"] == "RuntimeError"
        assert wrong[call]["message"].startswith("401 Unauthorized")


def test_a_wrong_key_reaches_the_async_client_as_the_json_error_body(
    crosscheck: CrossCheck,
) -> None:
    # the async client checks no status (§5.1): health() returns the 401 body as if it were health
    wrong = crosscheck.observed("async", "wrong_key")
    body = wrong["health"]["returned"]
    assert list(body) == ["error"] and "Unauthorized" in body["error"], wrong["health"]
    assert (wrong["run"]["raised"], wrong["run"]["message"]) == ("KeyError", "'id'")
    assert ("GET", "health", 401) in crosscheck.endpoint("async").api_calls


def test_an_unknown_endpoint_makes_the_sync_client_raise_a_404_http_error(
    crosscheck: CrossCheck,
) -> None:
    unknown = crosscheck.observed("sync", "unknown_endpoint")
    for call in ("health", "run"):
        assert (unknown[call]["raised"], unknown[call]["http_status"]) == ("HTTPError", 404)


# -- rate limits over http:// (§5.1, §8 item 27) ---------------------------------------------


def test_a_get_over_the_rate_limit_is_retried_silently_after_retry_after(
    crosscheck: CrossCheck,
) -> None:
    limited = crosscheck.observed("sync", "rate_limited")
    assert limited["first_status"] == "IN_QUEUE"
    assert limited["second_status"] == {"returned": "IN_QUEUE"}
    assert limited["second_status_s"] >= 1.0  # urllib3 slept the Retry-After: 1
    status_calls = [c for c in crosscheck.emulator.endpoint(LIMITED).api_calls if c[1] == "status"]
    assert status_calls == [("GET", "status", 200), ("GET", "status", 429), ("GET", "status", 200)]


def test_a_post_over_the_rate_limit_raises_http_error(crosscheck: CrossCheck) -> None:
    second_run = crosscheck.observed("sync", "rate_limited")["second_run"]
    assert (second_run["raised"], second_run["http_status"]) == ("HTTPError", 429)
    run_calls = [c for c in crosscheck.emulator.endpoint(LIMITED).api_calls if c[1] == "run"]
    assert run_calls == [("POST", "run", 200), ("POST", "run", 429)]

"""The worker-facing routes, spoken directly (runpod-api.md §6.3, §6.4, §8 items 12, 26).

The test plays the worker: each emulated worker runs a process that only sleeps, and the test
sends what ``runpod.serverless.start`` would, with the key that process was given. Virtual
time, so long-polls and timeouts cost nothing.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import anyio
import pytest
from support import emulated, run, state_of, until

from orchestrator.emulator import (
    EmulatedEndpoint,
    EmulatedWorker,
    Emulator,
    EmulatorConfig,
    EndpointConfig,
    WorkerState,
)
from orchestrator.emulator._worker_api import STOP_WAIT_S, TAKE_WAIT_S

pytestmark = pytest.mark.anyio

SLEEPER = (sys.executable, "-c", "import time; time.sleep(3600)")
CLIENT = {"Authorization": "test-key"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}  # what the SDK sends (§6.3)


def since(start: float) -> float:
    """Loop seconds since ``start``, to the millisecond (no float noise in comparisons)."""
    return round(anyio.current_time() - start, 3)


def hosted(**overrides: Any) -> EndpointConfig:
    """A hosted endpoint whose worker processes only sleep; nothing times out unless asked."""
    settings: dict[str, Any] = {
        "handler_command": SLEEPER,
        "min_workers": 1,
        "cold_start_s": 0.0,
        "queue_delay_s": 0.0,
        "idle_timeout_s": 3600.0,
        "init_timeout_s": math.inf,
        "dead_after_missed_pings": math.inf,
        "handler_stop_grace_s": 1.0,
    }
    settings.update(overrides)
    return EndpointConfig(**settings)


@dataclass
class Reply:
    status: int
    body: Any


class PlayedWorker:
    """The test's side of one worker's protocol traffic (what the SDK's loop sends)."""

    def __init__(self, session: aiohttp.ClientSession, emulator: Emulator, worker: EmulatedWorker):
        self.session = session
        self.worker = worker
        self.base = f"{emulator.base_url}/ep"
        self.key = worker.api_key.reveal()

    async def send(
        self, method: str, url: str, *, data: str | None = None, key: str | None = None
    ) -> Reply:
        headers = {"Authorization": self.key if key is None else key, **FORM}
        async with self.session.request(method, url, data=data, headers=headers) as response:
            text = await response.text()
            return Reply(response.status, json.loads(text) if text else None)

    async def take(self, *, key: str | None = None) -> Reply:
        url = f"{self.base}/job-take/{self.worker.id}?gpu=EMULATED&job_in_progress=0"
        return await self.send("GET", url, key=key)

    async def take_batch(self, size: int) -> Reply:
        url = f"{self.base}/job-take-batch/{self.worker.id}?gpu=EMULATED&batch_size={size}"
        return await self.send("GET", url)

    async def stop_poll(self) -> Reply:
        return await self.send("GET", f"{self.base}/job-stop/{self.worker.id}?gpu=EMULATED")

    async def done(self, job_id: str, body: Any, *, is_stream: bool = False) -> Reply:
        flag = "true" if is_stream else "false"
        url = f"{self.base}/job-done/{self.worker.id}/{job_id}?gpu=EMULATED&isStream={flag}"
        return await self.send("POST", url, data=json.dumps(body))

    async def stream(self, job_id: str, output: Any) -> Reply:
        url = f"{self.base}/job-stream/{self.worker.id}/{job_id}?gpu=EMULATED&isStream=false"
        return await self.send("POST", url, data=json.dumps({"output": output}))

    async def ping(self, query: str = "") -> Reply:
        url = f"{self.base}/ping/{self.worker.id}?gpu=EMULATED&runpod_version=1.12.0{query}"
        return await self.send("GET", url)


@asynccontextmanager
async def played(
    config: EndpointConfig, index: int = 0
) -> AsyncIterator[tuple[Emulator, EmulatedEndpoint, PlayedWorker]]:
    """An emulator whose ``index``-th worker (once its process runs) the test plays."""
    async with emulated(config) as (emulator, endpoint), aiohttp.ClientSession() as session:
        await until(lambda: len(endpoint.workers) > index)
        worker = endpoint.workers[index]
        await until(lambda: worker.process_id is not None)
        yield emulator, endpoint, PlayedWorker(session, emulator, worker)


async def client(method: str, url: str) -> Reply:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, headers=CLIENT) as response,
    ):
        return Reply(response.status, await response.json())


async def status(emulator: Emulator, job_id: str) -> dict[str, Any]:
    reply = await client("GET", f"{emulator.base_url}/ep/status/{job_id}")
    assert reply.status == 200
    body: dict[str, Any] = reply.body
    return body


async def taken_job(emulator: Emulator, me: PlayedWorker, job_input: Any) -> str:
    """Submit a job and take it as the played worker; return its id."""
    job_id = await run(emulator, {"input": job_input})
    reply = await me.take()
    assert reply.status == 200
    assert reply.body == {"id": job_id, "input": job_input}
    return job_id


async def test_job_take_is_a_bounded_long_poll_that_hands_out_the_next_job() -> None:
    async with played(hosted()) as (emulator, endpoint, me):
        assert me.worker.state is WorkerState.INITIALIZING  # billed boot until its first take
        started = anyio.current_time()
        assert (await me.take()).status == 204
        assert TAKE_WAIT_S <= since(started) < TAKE_WAIT_S + 1
        assert TAKE_WAIT_S < 90  # the SDK's client timeout
        assert state_of(me.worker) is WorkerState.IDLE
        assert endpoint.health()["workers"]["idle"] == 1

        replies: list[Reply] = []
        async with anyio.create_task_group() as tg:

            async def take() -> None:
                replies.append(await me.take())

            tg.start_soon(take)
            await anyio.sleep(5)
            started = anyio.current_time()
            job_id = await run(emulator, {"input": {"prompt": "a fox"}})
        assert since(started) < 1  # handed out as soon as it was queued
        assert [(r.status, r.body) for r in replies] == [
            (200, {"id": job_id, "input": {"prompt": "a fox"}})
        ]
        job = await status(emulator, job_id)
        assert job["status"] == "IN_PROGRESS"
        assert job["workerId"] == me.worker.id
        assert state_of(me.worker) is WorkerState.RUNNING
        assert me.worker.job_ids == [job_id]


async def test_job_done_reads_json_sent_as_a_form() -> None:
    async with played(hosted()) as (emulator, _endpoint, me):
        job_id = await taken_job(emulator, me, {"n": 1})
        assert (await me.done(job_id, {"output": {"images": ["b64"]}})).status == 200
        done = await status(emulator, job_id)
        assert (done["status"], done["output"]) == ("COMPLETED", {"images": ["b64"]})
        assert me.worker.state is WorkerState.IDLE

        failed_id = await taken_job(emulator, me, {"n": 2})
        reply = await me.done(failed_id, {"output": {"partial": True}, "error": "no such model"})
        assert reply.status == 200
        failed = await status(emulator, failed_id)
        assert (failed["status"], failed["error"]) == ("FAILED", "no such model")

        raw_id = await taken_job(emulator, me, {"n": 3})
        assert (await me.send("POST", f"{me.base}/job-done/{me.worker.id}/{raw_id}")).status == 400
        assert (await me.done(raw_id, {"error": {"code": 7}})).status == 200
        assert (await status(emulator, raw_id))["error"] == '{"code": 7}'


async def test_progress_and_stream_chunks_reach_the_client() -> None:
    async with played(hosted()) as (emulator, _endpoint, me):
        job_id = await taken_job(emulator, me, {"count": 2})
        reply = await me.done(job_id, {"status": "IN_PROGRESS", "output": {"step": 1}})
        assert reply.status == 200
        progress = await status(emulator, job_id)
        assert (progress["status"], progress["output"]) == ("IN_PROGRESS", {"step": 1})

        assert (await me.stream(job_id, "a")).status == 200
        assert (await me.stream(job_id, "b")).status == 200
        stream_url = f"{emulator.base_url}/ep/stream/{job_id}"
        assert (await client("GET", stream_url)).body == {
            "status": "IN_PROGRESS",
            "stream": [{"output": "a"}, {"output": "b"}],
        }
        assert (await me.done(job_id, {"output": []}, is_stream=True)).status == 200
        assert (await client("GET", stream_url)).body == {"status": "COMPLETED", "stream": []}
        assert (await status(emulator, job_id))["status"] == "COMPLETED"


async def test_cancel_signals_the_stop_channel_and_a_late_result_is_discarded() -> None:
    async with emulated(hosted(min_workers=0)) as (emulator, endpoint):
        job_id = await run(emulator, {"input": {"sleep": 60}})
        await until(lambda: bool(endpoint.workers) and endpoint.workers[0].process_id is not None)
        async with aiohttp.ClientSession() as session:
            me = PlayedWorker(session, emulator, endpoint.workers[0])
            assert (await me.take()).body == {"id": job_id, "input": {"sleep": 60}}
            started = anyio.current_time()
            assert (await me.stop_poll()).status == 204
            assert STOP_WAIT_S <= since(started) < STOP_WAIT_S + 1

            signals: list[Reply] = []
            async with anyio.create_task_group() as tg:

                async def poll() -> None:
                    signals.append(await me.stop_poll())

                tg.start_soon(poll)
                await anyio.sleep(1)
                cancelled = await client("POST", f"{emulator.base_url}/ep/cancel/{job_id}")
                assert cancelled.body["status"] == "CANCELLED"
            assert [(s.status, s.body) for s in signals] == [(200, {"jobsToStop": [job_id]})]
            # the job stopped, not the worker (runpod SDK >= 1.10): it is idle, its process up
            assert me.worker.state is WorkerState.IDLE
            assert me.worker.exit_codes == []

            late = await me.done(job_id, {"output": "too late"})
            assert (late.status, late.body) == (200, {"discarded": True})
            assert (await status(emulator, job_id))["status"] == "CANCELLED"
            assert (await me.done("no-such-job", {"output": 1})).status == 404
            next_id = await run(emulator, {"input": {"sleep": 1}})
            assert (await me.take()).body == {"id": next_id, "input": {"sleep": 1}}  # warm


async def test_worker_routes_accept_only_that_workers_own_key() -> None:
    async with played(hosted(min_workers=2)) as (emulator, endpoint, me):
        await until(lambda: endpoint.workers[1].process_id is not None)
        other = endpoint.workers[1].api_key.reveal()
        for key in ("", "test-key", other, f"Bearer {me.key}"):
            assert (await me.take(key=key)).status == 401, key
        assert (await me.ping()).status == 200
        unknown = me.base.replace("/ep", "/nope")
        assert (await me.send("GET", f"{unknown}/ping/{me.worker.id}")).status == 404

    async with emulated(EndpointConfig(min_workers=1, cold_start_s=0.0)) as (emulator, endpoint):
        await until(lambda: [w.state for w in endpoint.workers] == [WorkerState.IDLE])
        async with aiohttp.ClientSession() as session:
            builtin = PlayedWorker(session, emulator, endpoint.workers[0])
            assert (await builtin.take()).status == 401  # the built-in image has no worker routes


async def test_batch_take_hands_out_a_list_in_queue_order() -> None:
    async with played(hosted()) as (emulator, _endpoint, me):
        ids = [await run(emulator, {"input": {"n": n}}) for n in range(3)]
        reply = await me.take_batch(2)
        assert (reply.status, reply.body) == (
            200,
            [{"id": ids[0], "input": {"n": 0}}, {"id": ids[1], "input": {"n": 1}}],
        )
        assert me.worker.job_ids == ids[:2]
        assert (await me.done(ids[0], {"output": 0})).status == 200
        assert me.worker.state is WorkerState.RUNNING  # still running the other one
        assert (await me.done(ids[1], {"output": 1})).status == 200
        assert state_of(me.worker) is WorkerState.IDLE
        assert (await me.take_batch(0)).status == 400


async def test_pings_record_liveness_and_silence_kills_the_worker() -> None:
    config = hosted(ping_interval_s=1.0, dead_after_missed_pings=3, unhealthy_restart_s=30.0)
    async with played(config) as (emulator, endpoint, me):
        job_id = await taken_job(emulator, me, {"n": 1})
        assert (await me.ping(f"&job_id={job_id},other")).status == 200
        assert me.worker.ping_job_ids == (job_id, "other")
        assert me.worker.pings == 1
        pinged = anyio.current_time()
        first_pid = me.worker.process_id

        await until(lambda: me.worker.state is WorkerState.UNHEALTHY, within_s=10)
        assert 3 <= since(pinged) < 4
        failed = await status(emulator, job_id)
        assert failed["status"] == "FAILED"
        assert "no ping for 3 s" in failed["error"]
        assert endpoint.health()["workers"]["unhealthy"] == 1
        await until(lambda: bool(me.worker.exit_codes))  # its process was stopped

        await until(lambda: me.worker.process_id != first_pid, within_s=60)
        assert me.worker.state is WorkerState.INITIALIZING  # replaced after unhealthy_restart_s


async def test_an_unhealthy_ping_fails_the_worker_and_its_job() -> None:
    async with played(hosted(unhealthy_restart_s=600.0)) as (emulator, endpoint, me):
        job_id = await taken_job(emulator, me, {"n": 1})
        reply = await me.ping("&status=unhealthy&check=gpu&reason=no%20CUDA%20device")
        assert reply.status == 200
        assert me.worker.state is WorkerState.UNHEALTHY
        failed = await status(emulator, job_id)
        assert failed["status"] == "FAILED"
        assert "gpu: no CUDA device" in failed["error"]
        await until(lambda: bool(me.worker.exit_codes))
        assert endpoint.ledger[0].open  # unhealthy keeps its slot, unbilled


async def test_stop_pod_recycles_the_worker_with_a_fresh_process_and_key() -> None:
    async with played(hosted()) as (emulator, endpoint, me):
        job_id = await taken_job(emulator, me, {"n": 1})
        first_pid, old_key = me.worker.process_id, me.key
        assert (await me.done(job_id, {"output": {"ok": True}, "stopPod": True})).status == 200
        assert (await status(emulator, job_id))["output"] == {"ok": True}
        await until(lambda: me.worker.process_id != first_pid)
        assert len(me.worker.exit_codes) == 1
        assert me.worker.state is WorkerState.INITIALIZING
        assert [w.id for w in endpoint.workers] == [me.worker.id]  # the same worker id
        assert (await me.take(key=old_key)).status == 401
        assert (await me.ping()).status == 401
        me.key = me.worker.api_key.reveal()
        assert (await me.ping()).status == 200


async def test_idle_and_execution_timeouts_stop_the_process() -> None:
    config = hosted(min_workers=0, idle_timeout_s=5.0, execution_timeout_s=30.0)
    async with emulated(config) as (emulator, endpoint), aiohttp.ClientSession() as session:
        job_id = await run(emulator, {"input": {"n": 1}})
        await until(lambda: bool(endpoint.workers) and endpoint.workers[0].process_id is not None)
        me = PlayedWorker(session, emulator, endpoint.workers[0])
        assert (await me.take()).status == 200
        started = anyio.current_time()
        await until(lambda: me.worker.state is WorkerState.STOPPED, within_s=60)
        assert 30 <= since(started) < 31
        assert (await status(emulator, job_id))["status"] == "TIMED_OUT"
        assert (await me.stop_poll()).body == {"jobsToStop": [job_id]}
        await until(lambda: bool(me.worker.exit_codes))

        second_id = await run(emulator, {"input": {"n": 2}})
        await until(
            lambda: len(endpoint.workers) == 2 and endpoint.workers[1].process_id is not None
        )
        me = PlayedWorker(session, emulator, endpoint.workers[1])
        assert (await me.take()).status == 200
        assert (await me.done(second_id, {"output": 2})).status == 200
        idle_since = anyio.current_time()
        await until(lambda: me.worker.state is WorkerState.STOPPED, within_s=60)
        assert 5 <= since(idle_since) < 6
        await until(lambda: bool(me.worker.exit_codes))
        assert endpoint.health()["workers"] == dict.fromkeys(
            ("idle", "initializing", "ready", "running", "throttled", "unhealthy"), 0
        )


async def test_a_worker_that_never_takes_a_job_hits_the_init_timeout() -> None:
    async with played(hosted(init_timeout_s=30.0)) as (_emulator, endpoint, me):
        await until(lambda: me.worker.state is WorkerState.UNHEALTHY, within_s=60)
        assert 30 <= since(me.worker.started_at) < 31
        await until(lambda: bool(me.worker.exit_codes))
        assert endpoint.health()["workers"]["unhealthy"] == 1
        assert endpoint.ledger[0].boot_s == pytest.approx(30, abs=0.5)


async def test_queued_jobs_scale_out_hosted_workers_like_built_in_ones() -> None:
    config = hosted(min_workers=0, max_workers=2, queue_delay_s=4.0)
    async with emulated(config) as (emulator, endpoint), aiohttp.ClientSession() as session:
        await run(emulator, {"input": {"probe": True}, "policy": {"lowPriority": True}})
        await anyio.sleep(10)
        assert endpoint.workers == []  # a lowPriority job never starts a worker
        first_id = await run(emulator, {"input": {"n": 1}})
        await until(lambda: len(endpoint.workers) == 1)
        assert 4 <= since(endpoint.jobs[first_id].submitted_at) < 5
        await until(lambda: endpoint.workers[0].process_id is not None)
        me = PlayedWorker(session, emulator, endpoint.workers[0])
        assert (await me.take()).body == {"id": first_id, "input": {"n": 1}}  # normal first

        second_id = await run(emulator, {"input": {"n": 2}})
        await until(lambda: len(endpoint.workers) == 2)  # the only worker is busy
        assert 4 <= since(endpoint.jobs[second_id].submitted_at) < 5
        workers = endpoint.health()["workers"]
        assert (workers["running"], workers["initializing"]) == (1, 1)
        assert [entry.open for entry in endpoint.ledger] == [True, True]
        await until(lambda: endpoint.workers[1].process_id is not None)  # booted: close cleanly


def test_handler_config_is_checked() -> None:
    with pytest.raises(ValueError, match="protocol variables"):
        EndpointConfig(handler_command=SLEEPER, handler_env={"RUNPOD_POD_ID": "mine"})
    with pytest.raises(ValueError, match="ping_interval_s"):
        EndpointConfig(handler_command=SLEEPER, ping_interval_s=0.5)
    with pytest.raises(ValueError, match="at least the program"):
        EndpointConfig(handler_command=())
    as_typed = EndpointConfig(handler_command=["python", "h.py"])  # type: ignore[arg-type]
    assert as_typed.handler_command == ("python", "h.py")  # a list, as users write it


async def test_a_command_that_cannot_start_leaves_the_worker_unhealthy() -> None:
    config = hosted(handler_command=("/nonexistent/handler-binary",))
    async with Emulator(EmulatorConfig(endpoints={"ep": config})) as emulator:
        endpoint = emulator.endpoint("ep")
        await until(lambda: bool(endpoint.workers))
        await until(lambda: endpoint.workers[0].state is WorkerState.UNHEALTHY)
        assert endpoint.workers[0].process_id is None

"""The emulator's v2 worker image: leases behind a bearer-token gateway (worker-protocols.md v2).

Every test talks to the running emulator and to the leased worker's fake SwarmUI over real
loopback HTTP, in virtual time (a 300 s idle window costs nothing).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import aiohttp
import anyio
import pytest
from support import emulated, run, state_of, until

from orchestrator.emulator import Emulator, EndpointConfig, EndpointFaults, WorkerState
from orchestrator.emulator.swarm import FakeSwarmUI, SwarmConfig

pytestmark = pytest.mark.anyio

V2 = EndpointConfig(protocol="v2", cold_start_s=30.0, idle_timeout_s=900.0)
"""A v2 endpoint whose workers outlive the leases they served (so their SwarmUI stays up)."""
KEY = {"Authorization": "test-key"}
HOUR_MS = 3_600_000


def gen(**extra: Any) -> dict[str, Any]:
    """A small, fast generation body (4 steps of 0.05 s)."""
    return {"images": 1, "prompt": "a cat", "width": 64, "height": 64, "steps": 4, **extra}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def api(emulator: Emulator, method: str, path: str) -> dict[str, Any]:
    """One request on endpoint ``ep`` with the test key; the JSON answer (asserts 200)."""
    async with (
        aiohttp.ClientSession(headers=KEY) as http,
        http.request(method, f"{emulator.base_url}/ep/{path}") as response,
    ):
        assert response.status == 200
        answer: dict[str, Any] = await response.json()
        return answer


async def lease(
    emulator: Emulator, *, execution_timeout_ms: int = 2 * HOUR_MS, **terms: Any
) -> str:
    """Submit a lease job (with an execution timeout above the lease); return its id."""
    body = {
        "input": {"action": "lease", **terms},
        "policy": {"executionTimeout": execution_timeout_ms},
    }
    return await run(emulator, body)


async def leased(emulator: Emulator, job_id: str, *, within_s: float = 900.0) -> dict[str, Any]:
    """Poll ``/stream`` until the lease's first output arrives; return that output."""
    with anyio.fail_after(within_s):
        while True:
            answer = await api(emulator, "GET", f"stream/{job_id}")
            if answer["stream"]:
                assert len(answer["stream"]) == 1, answer
                output: dict[str, Any] = answer["stream"][0]["output"]
                return output
            assert answer["status"] in ("IN_QUEUE", "IN_PROGRESS"), answer
            await anyio.sleep(1.0)


async def swarm(
    grant: Mapping[str, Any], route: str, body: dict[str, Any], headers: Mapping[str, str]
) -> tuple[int, Any]:
    """POST ``body`` to a SwarmUI API route at the lease's ``public_url``: (status, answer)."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{grant['public_url']}/API/{route}", json=body, headers=headers) as response,
    ):
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.text()


async def generate(grant: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """Run one generation on the leased worker with the lease's session and token."""
    status, answer = await swarm(
        grant,
        "GenerateText2Image",
        {"session_id": grant["session_id"], **gen(**extra)},
        bearer(grant["token"]),
    )
    assert status == 200, answer
    assert isinstance(answer, dict)
    return answer


def fake_of(emulator: Emulator, grant: Mapping[str, Any]) -> FakeSwarmUI:
    worker = next(w for w in emulator.endpoint("ep").workers if w.id == grant["worker_id"])
    return worker.swarm


# -- the lease ------------------------------------------------------------------------------------


async def test_the_lease_is_the_first_streamed_output_and_streams_once(
    anyio_backend: object,
) -> None:
    async with emulated(V2) as (emulator, ep):
        job_id = await lease(
            emulator, idle_seconds=120, startup_grace_seconds=240, max_lease_seconds=1800
        )
        grant = await leased(emulator, job_id)
        again = await api(emulator, "GET", f"stream/{job_id}")
        status = await api(emulator, "GET", f"status/{job_id}")
    worker = ep.workers[0]
    assert grant == {
        "success": True,
        "protocol": 2,
        "public_url": worker.public_url,
        "token": grant["token"],
        "worker_id": worker.id,
        "session_id": worker.session_id,
        "version": "0.9.7.0-emulated",
        "idle_seconds": 120,
        "startup_grace_seconds": 240,
        "max_lease_seconds": 1800,
    }
    assert isinstance(grant["token"], str) and len(grant["token"]) >= 32
    assert again == {"status": "IN_PROGRESS", "stream": []}  # a cursor, never a replay
    assert status["status"] == "IN_PROGRESS" and status["workerId"] == worker.id


async def test_a_lease_without_terms_uses_the_documented_defaults(anyio_backend: object) -> None:
    async with emulated(V2) as (emulator, ep):
        job_id = await lease(emulator)
        grant = await leased(emulator, job_id)
        await until(lambda: ep.jobs[job_id].state.is_terminal)
    job = ep.jobs[job_id]
    terms = (grant["idle_seconds"], grant["startup_grace_seconds"], grant["max_lease_seconds"])
    assert terms == (300, 600, 3600)
    assert job.started_at is not None and job.finished_at is not None
    assert job.finished_at - job.started_at == pytest.approx(600, abs=0.5)  # the unused grace


async def test_every_lease_gets_a_fresh_token_and_the_old_one_stops_working(
    anyio_backend: object,
) -> None:
    async with emulated(V2) as (emulator, ep):
        first_id = await lease(emulator, startup_grace_seconds=60)
        first = await leased(emulator, first_id)
        await until(lambda: ep.jobs[first_id].status == "COMPLETED")
        second = await leased(emulator, await lease(emulator))
        old = await swarm(second, "GetNewSession", {}, bearer(first["token"]))
        new = await swarm(second, "GetNewSession", {}, bearer(second["token"]))
    assert first["worker_id"] == second["worker_id"]  # the same worker, leased twice
    assert first["token"] != second["token"]
    assert old == (401, "Unauthorized")
    assert new[0] == 200


# -- the gateway ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": ""}, "raw token"],
    ids=["none", "wrong", "empty", "raw-token-without-bearer"],
)
async def test_the_gateway_refuses_api_requests_without_the_lease_token(
    anyio_backend: object, headers: dict[str, str] | str
) -> None:
    async with emulated(V2) as (emulator, _):
        grant = await leased(emulator, await lease(emulator))
        sent = {"Authorization": grant["token"]} if headers == "raw token" else headers
        assert isinstance(sent, dict)
        refused = [
            await swarm(grant, route, {"session_id": grant["session_id"]}, sent)
            for route in ("GetNewSession", "GetCurrentStatus", "ListModels", "NoSuchRoute")
        ]
    assert refused == [(401, "Unauthorized")] * 4


async def test_the_gateway_lets_the_lease_token_through(anyio_backend: object) -> None:
    async with emulated(V2) as (emulator, _):
        grant = await leased(emulator, await lease(emulator))
        status, session = await swarm(grant, "GetNewSession", {}, bearer(grant["token"]))
        images = await generate(grant)
    assert status == 200 and session["session_id"]
    assert images["images"][0].startswith("View/local/raw/")


async def test_the_gateway_guards_the_websocket_upgrade(anyio_backend: object) -> None:
    async with emulated(V2) as (emulator, _):
        grant = await leased(emulator, await lease(emulator))
        url = f"{grant['public_url']}/API/GenerateText2ImageWS"
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(url, headers=bearer("not-the-token"))
            with pytest.raises(aiohttp.WSServerHandshakeError) as anonymous:
                await http.ws_connect(url)
            messages = []
            async with http.ws_connect(url, headers=bearer(grant["token"])) as ws:
                await ws.send_json({"session_id": grant["session_id"], **gen()})
                async for message in ws:
                    messages.append(message.json())
    assert refused.value.status == anonymous.value.status == 401
    assert any("image" in message for message in messages)


async def test_the_gateway_guards_view(anyio_backend: object) -> None:
    async with emulated(V2) as (emulator, _):
        grant = await leased(emulator, await lease(emulator))
        path = (await generate(grant))["images"][0]
        url = f"{grant['public_url']}/{path.replace(' ', '%20')}"
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as anonymous:
                anonymous_status = anonymous.status
            async with http.get(url, headers=bearer(grant["token"])) as allowed:
                allowed_status, body = allowed.status, await allowed.read()
    assert anonymous_status == 401
    assert allowed_status == 200 and body.startswith(b"\x89PNG")


async def test_a_gateway_replaces_the_static_authorization_until_removed(
    anyio_backend: object,
) -> None:
    fake = FakeSwarmUI(SwarmConfig(required_authorization="Bearer static"))
    url = await fake.start()
    grant = {"public_url": url}
    try:
        before = await swarm(grant, "GetNewSession", {}, bearer("static"))
        fake.set_gateway_token("lease")
        during = [await swarm(grant, "GetNewSession", {}, bearer(t)) for t in ("static", "lease")]
        fake.set_gateway_token(None)
        closed = await swarm(grant, "GetNewSession", {}, bearer("lease"))
        fake.remove_gateway()
        after = [await swarm(grant, "GetNewSession", {}, bearer(t)) for t in ("static", "lease")]
    finally:
        await fake.stop()
    assert before[0] == 200
    assert [status for status, _ in during] == [401, 200]
    assert closed == (401, "Unauthorized")
    assert [status for status, _ in after] == [200, 401]
    assert "lease" not in repr(fake)


# -- when a lease ends ----------------------------------------------------------------------------


async def test_status_polls_never_keep_a_lease_alive(anyio_backend: object) -> None:
    async with emulated(V2) as (emulator, ep):
        job_id = await lease(emulator, idle_seconds=300)
        grant = await leased(emulator, job_id)
        await generate(grant)
        fake = fake_of(emulator, grant)
        generated_at = fake.last_activity_at
        token = bearer(grant["token"])
        polls: list[tuple[float, int]] = []
        job = ep.jobs[job_id]
        with anyio.fail_after(900):
            while not job.state.is_terminal:
                for route, body in (
                    ("GetCurrentStatus", {"session_id": grant["session_id"]}),
                    ("ListModels", {"session_id": grant["session_id"], "path": "", "depth": 1}),
                    ("GetNewSession", {}),
                ):
                    status, _ = await swarm(grant, route, body, token)
                    polls.append((anyio.current_time(), status))
                await anyio.sleep(5.0)
    assert generated_at is not None and job.finished_at is not None
    assert job.status == "COMPLETED" and job.output["ended"] == "idle"
    assert job.finished_at - generated_at == pytest.approx(300, abs=1.0)
    answered = [status for at, status in polls if at < job.finished_at - 1]
    assert len(answered) >= 150 and set(answered) == {200}


async def test_a_generation_in_the_middle_extends_the_lease(anyio_backend: object) -> None:
    async with emulated(V2) as (emulator, ep):
        job_id = await lease(emulator, idle_seconds=300)
        grant = await leased(emulator, job_id)
        fake = fake_of(emulator, grant)
        await generate(grant)
        first_at = fake.last_activity_at
        await anyio.sleep(200)
        await generate(grant)
        second_at = fake.last_activity_at
        await until(lambda: ep.jobs[job_id].state.is_terminal)
    job = ep.jobs[job_id]
    assert first_at is not None and second_at is not None and job.finished_at is not None
    assert job.finished_at - second_at == pytest.approx(300, abs=1.0)
    assert job.output["ended"] == "idle" and job.output["generations"] == 2


async def test_a_model_load_counts_as_use(anyio_backend: object) -> None:
    async with emulated(V2) as (emulator, ep):
        job_id = await lease(emulator, idle_seconds=100, startup_grace_seconds=100)
        grant = await leased(emulator, job_id)
        await anyio.sleep(80)
        status, _ = await swarm(
            grant,
            "SelectModel",
            {"session_id": grant["session_id"], "model": "dreamshaper_8"},
            bearer(grant["token"]),
        )
        loaded_at = fake_of(emulator, grant).last_activity_at
        await until(lambda: ep.jobs[job_id].state.is_terminal)
    job = ep.jobs[job_id]
    assert status == 200 and loaded_at is not None and job.finished_at is not None
    assert job.finished_at - loaded_at == pytest.approx(100, abs=1.0)
    assert job.output["model_loads"] == 1 and job.output["generations"] == 0


async def test_a_lease_never_ends_while_a_generation_runs(anyio_backend: object) -> None:
    slow = EndpointConfig(
        protocol="v2",
        cold_start_s=30.0,
        idle_timeout_s=900.0,
        swarm=SwarmConfig(seconds_per_step=50.0),
    )
    async with emulated(slow) as (emulator, ep):
        job_id = await lease(emulator, idle_seconds=60, startup_grace_seconds=60)
        grant = await leased(emulator, job_id)
        started = anyio.current_time()
        await generate(grant)  # 4 steps x 50 s: longer than every idle window
        finished = anyio.current_time()
        await until(lambda: ep.jobs[job_id].state.is_terminal)
    job = ep.jobs[job_id]
    assert finished - started == pytest.approx(200, abs=1.0)
    assert job.finished_at is not None and job.status == "COMPLETED"
    assert job.finished_at - finished == pytest.approx(60, abs=1.0)


async def test_an_unused_lease_ends_after_its_startup_grace(anyio_backend: object) -> None:
    async with emulated(V2) as (emulator, ep):
        job_id = await lease(emulator, idle_seconds=60, startup_grace_seconds=240)
        await leased(emulator, job_id)
        await until(lambda: ep.jobs[job_id].state.is_terminal)
    job = ep.jobs[job_id]
    assert job.started_at is not None and job.finished_at is not None
    assert job.finished_at - job.started_at == pytest.approx(240, abs=0.5)
    assert job.output["ended"] == "idle" and job.output["generations"] == 0


async def test_the_startup_grace_ends_with_the_first_generation(anyio_backend: object) -> None:
    async with emulated(V2) as (emulator, ep):
        job_id = await lease(emulator, idle_seconds=60, startup_grace_seconds=600)
        grant = await leased(emulator, job_id)
        await anyio.sleep(10)
        await generate(grant)
        generated_at = fake_of(emulator, grant).last_activity_at
        await until(lambda: ep.jobs[job_id].state.is_terminal)
    job = ep.jobs[job_id]
    assert generated_at is not None and job.finished_at is not None
    assert job.finished_at - generated_at == pytest.approx(60, abs=1.0)


async def test_a_lease_ends_at_max_lease_seconds_even_while_in_use(anyio_backend: object) -> None:
    async with emulated(V2) as (emulator, ep):
        job_id = await lease(emulator, idle_seconds=300, max_lease_seconds=120)
        grant = await leased(emulator, job_id)
        job = ep.jobs[job_id]
        while not job.state.is_terminal:  # keep it busy: a generation every 20 s
            await generate(grant)
            await anyio.sleep(20)
        late = await swarm(grant, "GetNewSession", {}, bearer(grant["token"]))
    assert job.started_at is not None and job.finished_at is not None
    assert job.finished_at - job.started_at == pytest.approx(120, abs=0.5)
    assert job.status == "COMPLETED"
    assert job.output["ended"] == "max_lease" and job.output["success"] is True
    assert late == (401, "Unauthorized")


async def test_an_ended_lease_revokes_its_token_but_the_worker_stays(
    anyio_backend: object,
) -> None:
    async with emulated(V2) as (emulator, ep):
        job_id = await lease(emulator, startup_grace_seconds=30)
        grant = await leased(emulator, job_id)
        await until(lambda: ep.jobs[job_id].state.is_terminal)
        after = await swarm(grant, "GetNewSession", {}, bearer(grant["token"]))
        worker = ep.workers[0]
        state, gateway = worker.state, worker.swarm.gateway
    assert ep.jobs[job_id].status == "COMPLETED"
    assert after == (401, "Unauthorized")
    assert (state, gateway) == (WorkerState.IDLE, "closed")


# -- releasing a lease ----------------------------------------------------------------------------


async def test_cancelling_a_running_lease_revokes_its_token_and_the_worker_idles_out(
    anyio_backend: object,
) -> None:
    async with emulated(V2) as (emulator, ep):
        job_id = await lease(emulator)
        grant = await leased(emulator, job_id)
        await anyio.sleep(42)
        cancelled = await api(emulator, "POST", f"cancel/{job_id}")
        await anyio.sleep(1)
        refused = await swarm(grant, "GetNewSession", {}, bearer(grant["token"]))
        assert refused == (401, "Unauthorized")  # the gateway closed again: the token is dead
        worker = ep.workers[0]
        assert worker.state is WorkerState.IDLE  # the job stopped, not the worker
        await anyio.sleep(V2.idle_timeout_s + 1)
        billed = ep.ledger[0]
    assert (cancelled["status"], cancelled["workerId"]) == ("CANCELLED", worker.id)
    assert state_of(worker) is WorkerState.STOPPED
    assert worker.swarm.gateway == "closed"
    idle_timeout_s = V2.idle_timeout_s
    finished_at = ep.jobs[job_id].finished_at
    assert finished_at is not None
    assert billed.stopped_at == pytest.approx(finished_at + idle_timeout_s)
    assert billed.execution_s == pytest.approx(43, abs=1.5)
    assert billed.idle_s == pytest.approx(idle_timeout_s, abs=0.1)


async def test_a_lease_cancelled_within_the_queue_delay_never_starts_a_worker(
    anyio_backend: object,
) -> None:
    config = EndpointConfig(protocol="v2", cold_start_s=30.0, queue_delay_s=4.0)
    async with emulated(config) as (emulator, ep):
        job_id = await lease(emulator)
        await anyio.sleep(2)
        cancelled = await api(emulator, "POST", f"cancel/{job_id}")
        await anyio.sleep(600)
        ledger = ep.ledger
    assert cancelled["status"] == "CANCELLED"
    assert ep.workers == [] and ledger == []
    assert ep.jobs[job_id].worker_id is None


async def test_a_lease_cancelled_while_its_worker_boots_never_runs_and_the_worker_idles_out(
    anyio_backend: object,
) -> None:
    config = EndpointConfig(protocol="v2", cold_start_s=30.0, queue_delay_s=4.0, idle_timeout_s=5)
    async with emulated(config) as (emulator, ep):
        job_id = await lease(emulator)
        await until(lambda: len(ep.workers) == 1)
        await anyio.sleep(10)
        cancelled = await api(emulator, "POST", f"cancel/{job_id}")
        await anyio.sleep(120)
        ledger = ep.ledger
    job = ep.jobs[job_id]
    assert cancelled["status"] == "CANCELLED"
    assert job.worker_id is None and job.stream == []
    assert ep.workers[0].state is WorkerState.STOPPED
    # RunPod does not take back a worker it started: it boots, finds no job and idles out
    assert [(round(e.boot_s), e.execution_s, round(e.idle_s)) for e in ledger] == [(30, 0.0, 5)]


async def test_a_queued_lease_starts_another_worker_with_its_own_token(
    anyio_backend: object,
) -> None:
    async with emulated(V2) as (emulator, ep):
        first = await leased(emulator, await lease(emulator))
        second = await leased(emulator, await lease(emulator))
        crossed = await swarm(second, "GetNewSession", {}, bearer(first["token"]))
        own = await swarm(second, "GetNewSession", {}, bearer(second["token"]))
    assert len(ep.workers) == 2
    assert first["worker_id"] != second["worker_id"]
    assert first["public_url"] != second["public_url"]
    assert crossed == (401, "Unauthorized") and own[0] == 200


# -- actions and protocol detection ---------------------------------------------------------------


async def test_the_v1_image_answers_a_lease_with_unknown_action_and_its_actions(
    anyio_backend: object,
) -> None:
    async with emulated(EndpointConfig(cold_start_s=30.0)) as (emulator, ep):
        job_id = await lease(emulator)
        await until(lambda: ep.jobs[job_id].state.is_terminal)
        status = await api(emulator, "GET", f"status/{job_id}")
    assert status["status"] == "FAILED"
    assert status["error"] == "Unknown action: lease"
    assert {"wakeup", "keepalive"} <= set(ep.jobs[job_id].output["available_actions"])


async def test_the_v2_image_refuses_wakeup(anyio_backend: object) -> None:
    async with emulated(V2) as (emulator, ep):
        job_id = await run(emulator, {"input": {"action": "wakeup"}})
        await until(lambda: ep.jobs[job_id].state.is_terminal)
        status = await api(emulator, "GET", f"status/{job_id}")
    assert status["status"] == "FAILED"
    assert status["error"] == "Unknown action: wakeup"
    assert ep.jobs[job_id].output == {"success": False, "available_actions": ["lease", "health"]}


async def test_the_v2_image_reports_health_with_protocol_2(anyio_backend: object) -> None:
    async with emulated(V2) as (emulator, ep):
        job_id = await run(emulator, {"input": {"action": "health"}})
        await until(lambda: ep.jobs[job_id].state.is_terminal)
        status = await api(emulator, "GET", f"status/{job_id}")
    assert status["status"] == "COMPLETED"
    assert status["output"] == {"healthy": True, "worker_id": ep.workers[0].id, "protocol": 2}


@pytest.mark.parametrize(
    ("terms", "error"),
    [
        ({"idle_seconds": 0}, "idle_seconds must be a positive number of seconds"),
        ({"startup_grace_seconds": -5}, "startup_grace_seconds must be a positive number"),
        ({"max_lease_seconds": "3600"}, "max_lease_seconds must be a positive number"),
        ({"idle_seconds": True}, "idle_seconds must be a positive number"),
        ({"max_lease_seconds": None}, "max_lease_seconds must be a positive number"),
    ],
)
async def test_bad_lease_terms_are_refused(
    anyio_backend: object, terms: dict[str, Any], error: str
) -> None:
    async with emulated(V2) as (emulator, ep):
        job_id = await lease(emulator, **terms)
        refusal = await leased(emulator, job_id)
        await until(lambda: ep.jobs[job_id].state.is_terminal)
        status = await api(emulator, "GET", f"status/{job_id}")
    assert refusal["success"] is False and refusal["error"].startswith(error)
    assert "token" not in refusal
    assert status["status"] == "FAILED" and status["error"].startswith(error)
    assert ep.workers[0].swarm.gateway != "open"  # no token was ever issued


# -- faults ---------------------------------------------------------------------------------------


async def test_fault_a_lease_refused_by_the_worker(anyio_backend: object) -> None:
    async with emulated(V2) as (emulator, ep):
        ep.faults.lease_refused("no GPU memory")
        refused_id = await lease(emulator)
        refusal = await leased(emulator, refused_id)
        await until(lambda: ep.jobs[refused_id].state.is_terminal)
        grant = await leased(emulator, await lease(emulator))
    assert refusal == {"success": False, "error": "no GPU memory", "protocol": 2}
    assert ep.jobs[refused_id].status == "FAILED"
    assert ep.jobs[refused_id].error == "no GPU memory"
    assert grant["success"] is True  # only the scripted lease was refused


async def test_fault_a_lease_that_never_streams(anyio_backend: object) -> None:
    async with emulated(V2) as (emulator, ep):
        ep.faults.lease_never_streams()
        job_id = await lease(emulator, execution_timeout_ms=400_000)
        await until(lambda: ep.jobs[job_id].status == "IN_PROGRESS")
        seen = []
        for _ in range(30):
            seen.append(await api(emulator, "GET", f"stream/{job_id}"))
            await anyio.sleep(10)
        worker = ep.workers[0]
        during = (worker.state, worker.swarm.gateway != "open")
        await until(lambda: ep.jobs[job_id].state.is_terminal)
    assert seen == [{"status": "IN_PROGRESS", "stream": []}] * 30
    assert during == (WorkerState.RUNNING, True)  # billed, yet no token was issued
    assert ep.jobs[job_id].status == "TIMED_OUT"
    assert worker.state is WorkerState.STOPPED


async def test_fault_a_lease_cancelled_by_the_platform(anyio_backend: object) -> None:
    async with emulated(V2) as (emulator, ep):
        ep.faults.lease_cancelled(after_s=50)
        job_id = await lease(emulator)
        grant = await leased(emulator, job_id)
        await until(lambda: ep.jobs[job_id].state.is_terminal)
        status = await api(emulator, "GET", f"status/{job_id}")
    job, worker = ep.jobs[job_id], ep.workers[0]
    assert grant["success"] is True
    assert status["status"] == "CANCELLED"
    assert job.started_at is not None and job.finished_at is not None
    assert job.finished_at - job.started_at == pytest.approx(50, abs=0.5)
    assert worker.state is WorkerState.STOPPED and worker.swarm.gateway == "closed"


async def test_fault_a_worker_dying_mid_lease_fails_it_and_revokes_the_token(
    anyio_backend: object,
) -> None:
    async with emulated(V2) as (emulator, ep):
        ep.faults.worker_dies(after_s=90)
        job_id = await lease(emulator)
        await leased(emulator, job_id)
        await until(lambda: ep.jobs[job_id].state.is_terminal)
        status = await api(emulator, "GET", f"status/{job_id}")
    worker = ep.workers[0]
    assert status["status"] == "FAILED" and "died" in status["error"]
    assert worker.state is WorkerState.STOPPED and worker.swarm.gateway == "closed"


def test_lease_faults_refuse_impossible_scripts_and_clear_resets_them() -> None:
    faults = EndpointFaults()
    with pytest.raises(ValueError, match="times"):
        faults.lease_never_streams(times=0)
    with pytest.raises(ValueError, match="after_s"):
        faults.lease_cancelled(after_s=-1)
    with pytest.raises(ValueError, match="after_s"):
        faults.lease_cancelled(after_s=math.nan)
    with pytest.raises(ValueError, match="error text"):
        faults.lease_refused("")
    faults.lease_refused(times=2)
    faults.lease_never_streams()
    faults.lease_cancelled(after_s=5)
    faults.clear()
    assert (
        list(faults.lease_refusals),
        faults.silent_leases,
        list(faults.lease_cancellations),
    ) == (
        [],
        0,
        [],
    )

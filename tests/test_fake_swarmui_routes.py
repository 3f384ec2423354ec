"""The fake SwarmUI's backend, refresh, API-key and RunPod-extension routes (§5, §7, §8;
§11 items 38, 40, 42, 43), and what moves its idleness clock (worker-protocols.md v2)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import anyio
import pytest
from test_fake_swarmui import gen, only, swarm

from orchestrator.emulator.swarm import SwarmConfig

pytestmark = pytest.mark.anyio

NOON = datetime(2031, 7, 4, 9, 5)


# -- 38: loading, then running, on demand ---------------------------------------------------------


async def test_38_a_swarm_style_client_waits_while_a_backend_is_loading() -> None:
    """SwarmSwarmBackend re-lists every 1 s while any remote backend reports ``loading``."""
    async with swarm() as s, anyio.create_task_group() as tasks:
        sid = await s.session()
        s.fake.set_backend_state("loading")
        polls: list[str] = []
        ready_at: list[float] = []

        async def swarm_style_init() -> None:
            while True:
                _, backends = await s.post(
                    "ListBackends", {"session_id": sid, "nonreal": True, "full_data": True}
                )
                polls.append(backends["0"]["status"])
                if not any(b["status"] == "loading" for b in backends.values()):
                    ready_at.append(anyio.current_time())
                    return
                await anyio.sleep(1.0)

        started = anyio.current_time()
        tasks.start_soon(swarm_style_init)
        await anyio.sleep(30.0)
        assert not ready_at and len(polls) >= 30 and set(polls) == {"loading"}
        _, status = await s.post("GetCurrentStatus", {"session_id": sid})
        assert status["backend_status"]["any_loading"] is True
        s.fake.set_backend_state("running")
        await anyio.sleep(1.5)
        assert polls[-1] == "running"
        assert ready_at and ready_at[0] - started == pytest.approx(31.0, abs=1.0)


async def test_38_a_generation_sent_while_loading_waits_for_running() -> None:
    async with swarm() as s, anyio.create_task_group() as tasks:
        sid = await s.session()
        s.fake.set_backend_state("loading")
        result: dict[str, Any] = {}

        async def generate() -> None:
            result["answer"] = await s.post(
                "GenerateText2Image", {"session_id": sid, **gen(donotsave=True)}
            )

        tasks.start_soon(generate)
        await anyio.sleep(20.0)
        _, status = await s.post("GetCurrentStatus", {"session_id": sid})
        assert status["status"]["waiting_backends"] == 1 and "answer" not in result
        s.fake.set_backend_state("running")
        await anyio.sleep(5.0)
        assert result["answer"][0] == 200 and len(result["answer"][1]["images"]) == 1


async def test_38_a_ws_generation_streams_status_while_waiting_for_the_backend() -> None:
    async with swarm() as s, anyio.create_task_group() as tasks:
        s.fake.set_backend_state("loading")
        result: dict[str, Any] = {}

        async def generate() -> None:
            result["ws"], _ = await s.ws({"session_id": await s.session(), **gen()})

        tasks.start_soon(generate)
        await anyio.sleep(10.0)
        s.fake.set_backend_state("running")
    statuses = only(result["ws"], "backend_status")
    assert statuses[0]["backend_status"]["status"] == "loading"
    assert statuses[-1]["backend_status"]["status"] == "running"
    assert len(only(result["ws"], "image")) == 1


# -- 40: TriggerRefresh and FreeBackendMemory ----------------------------------------------------


async def test_40_trigger_refresh_returns_the_t2i_params_object() -> None:
    async with swarm() as s:
        answer = await s.call("TriggerRefresh", {})
        assert {"list", "groups", "models", "wildcards", "param_edits"} <= set(answer)
        sd_models = answer["models"]["Stable-Diffusion"]
        assert "OfficialStableDiffusion/sd_xl_base_1.0.safetensors" in sd_models
        ids = {param["id"] for param in answer["list"]}
        assert {"prompt", "steps", "cfgscale", "donotsave", "initimage"} <= ids
        assert await s.call("ListT2IParams", {}) == answer


async def test_40_free_backend_memory_returns_result_true_and_count_one() -> None:
    async with swarm() as s:
        answer = await s.call("FreeBackendMemory", {"system_ram": False, "backend": "0"})
        assert answer == {"result": True, "count": 1}


# -- 42: upstream API keys -----------------------------------------------------------------------


async def test_42_set_api_key_accepts_known_types_and_status_shows_the_date_only() -> None:
    config = SwarmConfig(runpod_extension=True, clock=lambda: NOON)
    async with swarm(config) as s:
        sid = await s.session()
        secret = "rpa_SECRET_never_echoed"
        status, answer = await s.post(
            "SetAPIKey", {"session_id": sid, "keyType": "runpod_api", "key": secret}
        )
        assert (status, answer) == (200, {"success": True})
        async with s.http.post(
            f"{s.url}/API/GetAPIKeyStatus", json={"session_id": sid, "keyType": "runpod_api"}
        ) as response:
            text = await response.text()
        assert secret not in text
        assert await s.post("GetAPIKeyStatus", {"session_id": sid, "keyType": "runpod_api"}) == (
            200,
            {"status": "last updated 2031-07-04 09:05"},
        )


async def test_42_unknown_key_types_are_a_200_error_naming_the_set_type() -> None:
    async with swarm() as s:  # the RunPod extension is off: runpod_api is not accepted
        sid = await s.session()
        status, answer = await s.post(
            "SetAPIKey", {"session_id": sid, "keyType": "runpod_api", "key": "k"}
        )
        assert status == 200 and answer["error"].startswith("Invalid key type '")
        assert "runpod_api" not in answer["error"]
        _, ok = await s.post("SetAPIKey", {"session_id": sid, "keyType": "civitai_api", "key": "k"})
        assert ok == {"success": True}


async def test_42_none_deletes_the_key_and_keys_are_per_user() -> None:
    async with swarm(SwarmConfig(clock=lambda: NOON)) as s:
        mine = await s.session()
        _, other = await s.post("GetNewSession", {}, headers={"X-SWARM-USER_ID": "zed"})
        body = {"session_id": mine, "keyType": "civitai_api"}
        assert (await s.post("GetAPIKeyStatus", body))[1] == {"status": "not set"}
        await s.post("SetAPIKey", {**body, "key": "abc"})
        assert (await s.post("GetAPIKeyStatus", body))[1]["status"].startswith("last updated")
        zed = {"session_id": other["session_id"], "keyType": "civitai_api"}
        assert (await s.post("GetAPIKeyStatus", zed))[1] == {"status": "not set"}
        await s.post("SetAPIKey", {**body, "key": "none"})
        assert (await s.post("GetAPIKeyStatus", body))[1] == {"status": "not set"}


async def test_42_the_default_clock_follows_the_loop_not_the_wall() -> None:
    async with swarm() as s:
        sid = await s.session()
        body = {"session_id": sid, "keyType": "civitai_api"}
        await s.post("SetAPIKey", {**body, "key": "abc"})
        first = (await s.post("GetAPIKeyStatus", body))[1]["status"]
        await anyio.sleep(3600.0)
        await s.post("SetAPIKey", {**body, "key": "abc"})
        second = (await s.post("GetAPIKeyStatus", body))[1]["status"]
        assert first.startswith("last updated 2026-01-01 ")
        later = datetime.strptime(second, "last updated %Y-%m-%d %H:%M")
        earlier = datetime.strptime(first, "last updated %Y-%m-%d %H:%M")
        assert (later - earlier).total_seconds() == pytest.approx(3600, abs=60)


# -- 43: the RunPod extension's routes ----------------------------------------------------------


async def test_43_runpod_routes_are_absent_unless_the_extension_is_on() -> None:
    async with swarm() as s:
        sid = await s.session()
        for route in ("GetStatus", "RefreshModels"):
            status, answer = await s.post(route, {"session_id": sid})
            assert (status, answer["error_id"]) == (400, "bad_route")


async def test_43_get_status_lists_running_runpod_backends_in_uppercase() -> None:
    config = SwarmConfig(runpod_extension=True, runpod_endpoint_id="abc123")
    async with swarm(config) as s:
        answer = await s.call("GetStatus", {})
        assert answer["success"] is True and answer["total_backends"] == 1
        (backend,) = answer["backends"]
        assert set(backend) == {
            "id", "title", "status", "endpoint_id", "model_count", "auto_refresh",
            "max_concurrent",
        }  # fmt: skip
        assert backend["status"] == "RUNNING" and backend["endpoint_id"] == "abc123"
        assert isinstance(backend["id"], int) and backend["model_count"] == len(config.models)
        s.fake.set_runpod_backend_status("errored")
        assert await s.call("GetStatus", {}) == {
            "success": True,
            "total_backends": 0,
            "backends": [],
        }


async def test_43_refresh_models_needs_a_running_backend_and_the_callers_key() -> None:
    async with swarm(SwarmConfig(runpod_extension=True)) as s:
        sid = await s.session()
        _, answer = await s.post("RefreshModels", {"session_id": sid})
        assert answer == {
            "success": True,
            "refreshed": 0,
            "failed": 1,
            "message": "Refreshed 0 RunPod backend(s), 1 failed.",
        }
        await s.post("SetAPIKey", {"session_id": sid, "keyType": "runpod_api", "key": "k"})
        _, answer = await s.post("RefreshModels", {"session_id": sid})
        assert (answer["refreshed"], answer["failed"]) == (1, 0)
        s.fake.set_runpod_backend_status("LOADING")
        _, answer = await s.post("RefreshModels", {"session_id": sid})
        assert answer == {"success": False, "error": "No RunPod backends are currently running"}


async def test_43_runpod_routes_need_use_runpod_serverless() -> None:
    async with swarm(SwarmConfig(runpod_extension=True, role="user")) as s:
        status, answer = await s.post("GetStatus", {"session_id": await s.session()})
        assert (status, answer["error_id"]) == (400, "bad_permissions")


# -- idleness: only generations and model loads move last_activity_at ---------------------------


async def test_status_polls_and_backend_lists_never_move_last_activity() -> None:
    async with swarm(SwarmConfig(runpod_extension=True)) as s:
        sid = await s.session()
        await s.post("GenerateText2Image", {"session_id": sid, **gen(donotsave=True)})
        finished = s.fake.last_activity_at
        assert finished is not None
        for _ in range(60):
            await anyio.sleep(1.0)
            for route, body in (
                ("GetCurrentStatus", {}),
                ("ListBackends", {"full_data": True}),
                ("ListModels", {"path": "", "depth": 1}),
                ("GetStatus", {}),
                ("TriggerRefresh", {}),
                ("FreeBackendMemory", {}),
            ):
                await s.post(route, {"session_id": sid, **body})
            await s.post("GetNewSession", {})
        assert s.fake.last_activity_at == finished
        start = anyio.current_time()
        await s.post("SelectModel", {"session_id": sid, "model": "dreamshaper_8"})
        assert s.fake.last_activity_at is not None and s.fake.last_activity_at >= start

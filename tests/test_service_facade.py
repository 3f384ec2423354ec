"""The SwarmUI-compatible facade, driven the way a real SwarmUI's Swarm-API-Backend drives it
(specs/swarmui-api.md §6), against a running service with the emulator behind it."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import anyio
import pytest
from PIL import Image
from service_support import models_discovered, served
from support import idled_out

from orchestrator.accounts import Role
from orchestrator.models import SUBTYPES

pytestmark = pytest.mark.anyio


async def test_swarm_swarm_backend_sequence_gets_images_while_a_cold_worker_wakes(
    tmp_path: Path,
) -> None:
    # AutoRefresh discovers the models at start (waking a worker, which goes at once);
    # the generation below then has to wake a cold worker of its own.
    async with served(tmp_path, AutoRefresh=True, IdleTimeoutSec=0) as world:
        await models_discovered(world)
        await anyio.sleep(1)
        assert await idled_out(world.endpoint) == []
        client = world.client("ann")

        # Init: GetNewSession, ListBackends, ListModels for every subtype.
        session = await client.new_session()
        assert len(session["session_id"]) == 40 and session["server_id"]
        status, backends = await client.call("ListBackends", {"nonreal": True, "full_data": True})
        assert status == 200
        ((backend_id, backend),) = backends.items()
        assert backend["status"] == "running"  # even though its workers are cold
        for key in ("id", "type", "title", "features", "can_load_models", "max_usages"):
            assert key in backend
        assert "current_model" in backend
        assert not backend["type"].startswith("comfyui_")
        models: dict[str, list[dict[str, object]]] = {}
        for subtype in SUBTYPES:
            status, listing = await client.call(
                "ListModels",
                {
                    "path": "",
                    "depth": 999,
                    "subtype": subtype,
                    "allowRemote": True,
                    "dataImages": True,
                },
            )
            assert status == 200 and "error" not in listing, listing
            models[subtype] = listing["files"]
        checkpoints = models["Stable-Diffusion"]
        assert checkpoints
        for model in checkpoints:
            assert {"name", "loaded", "standard_width", "standard_height"} <= model.keys()
            assert isinstance(model["loaded"], bool)
            assert isinstance(model["standard_width"], int)
        model_name = str(checkpoints[0]["name"])

        # SelectModel on the remote backend id, then a WS generation with SwarmSwarmBackend's keys.
        status, selected = await client.call(
            "SelectModel", {"model": model_name, "backendId": int(backend_id)}
        )
        assert (status, selected) == (200, {"success": True})
        jobs_before = len(world.endpoint.jobs)
        messages, close_code = await client.generate_ws(
            {
                "images": 2,
                "prompt": "a lighthouse",
                "model": model_name,
                "width": 64,
                "height": 64,
                "steps": 4,
                "seed": 11,
                "donotsave": True,
                "exactbackendid": int(backend_id),
                "forwardswarmdata": True,
            }
        )
        assert close_code == 1000
        assert len(world.endpoint.jobs) > jobs_before  # a worker was woken for it
        kinds = [next(iter(message)) for message in messages]
        assert kinds[0] == "status"
        assert "gen_progress" in kinds
        images = [m for m in messages if "image" in m]
        assert [m["batch_index"] for m in images] == ["0", "1"]
        for message in images:
            assert isinstance(message["image"], str) and message["image"].startswith(
                "data:image/png;base64,"
            )
            png = base64.b64decode(message["image"].split(",", 1)[1])
            with Image.open(io.BytesIO(png)) as decoded:
                assert decoded.size == (64, 64)
        first_image = kinds.index("image")
        assert kinds[first_image - 1] == "raw_swarm_data"
        assert kinds[-1] == "socket_intention" and messages[-1] == {"socket_intention": "close"}
        assert not any("error" in message for message in messages)
        booting = [m for m in messages if m.get("backend_status", {}).get("message")]
        assert booting, "status messages say what happens while the worker wakes"
        # IdleTimeoutSec 0: released at once; the worker idles out after the endpoint's timeout
        assert await idled_out(world.endpoint) == []


async def test_an_invalid_session_is_answered_as_swarmui_does_and_a_new_one_works(
    tmp_path: Path,
) -> None:
    async with served(tmp_path) as world:
        client = world.client("ann")
        client.session_id = "0" * 40
        status, answer = await client.call("ListBackends", {})
        assert status == 401 and answer["error_id"] == "invalid_session_id"
        await client.new_session()
        status, answer = await client.call("ListBackends", {})
        assert status == 200 and "0" in answer


async def test_another_users_session_is_invalid_for_me(tmp_path: Path) -> None:
    users = {"ann": Role.POWERUSER, "bob": Role.POWERUSER}
    async with served(tmp_path, users=users) as world:
        ann, bob = world.client("ann"), world.client("bob")
        await ann.new_session()
        bob.session_id = ann.session_id
        status, answer = await bob.call("ListBackends", {})
        assert status == 401 and answer["error_id"] == "invalid_session_id"


async def test_http_generation_returns_data_urls_and_interrupt_all_cancels(tmp_path: Path) -> None:
    async with served(tmp_path, IdleTimeoutSec=0) as world:
        client = world.client("ann")
        await client.new_session()
        status, answer = await client.call(
            "GenerateText2Image", {"images": 1, "prompt": "a fox", "width": 64, "height": 64}
        )
        assert status == 200, answer
        (image,) = answer["images"]
        assert image.startswith("data:image/png;base64,")
        assert await idled_out(world.endpoint) == []  # the next generation wakes a new worker

        result: dict[str, tuple[int, dict[str, Any]]] = {}

        async def slow() -> None:
            result["answer"] = await client.call(
                "GenerateText2Image", {"images": 1, "prompt": "a slow fox", "steps": 200}
            )

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(slow)
            await anyio.sleep(20)  # waking a worker
            status, interrupted = await client.call("InterruptAll", {"other_sessions": False})
            assert (status, interrupted) == (200, {"success": True})
        status, answer = result["answer"]
        assert status == 200 and answer == {"error": "Generation session interrupted."}
        await anyio.sleep(75)  # a worker RunPod started for the lease boots, then idles out
        statuses = [job.status for job in world.endpoint.jobs.values()]
        assert set(statuses) <= {"COMPLETED", "CANCELLED"}, statuses  # the lease was withdrawn
        assert world.endpoint.running_workers() == []


async def test_after_a_restart_the_models_are_listed_without_waking_a_worker(
    tmp_path: Path,
) -> None:
    async with served(tmp_path, AutoRefresh=True, IdleTimeoutSec=0) as world:
        discovered = await models_discovered(world)
    async with served(tmp_path, users={}) as world:  # a new process: AutoRefresh is off
        world.tokens["ann"] = (await world.service.accounts.issue_token("ann")).reveal()
        client = world.client("ann")
        await client.new_session()
        status, listing = await client.call("ListModels", {"path": "", "depth": 20})
        assert status == 200 and listing["files"]
        status, answer = await client.call("GetStatus", {})
        assert answer["backends"][0]["model_count"] == discovered
        assert world.endpoint.jobs == {}  # no worker was woken for it
        status, refreshed = await client.call("RefreshModels", {})
        assert refreshed == {
            "success": True,
            "refreshed": 1,
            "failed": 0,
            "message": "Refreshed 1 RunPod backend(s), 0 failed.",
        }
        assert world.endpoint.jobs  # RefreshModels does wake one

"""What a real SwarmUI's Swarm-API-Backend needs from ListBackends and SelectModel.

SwarmUI's ``SwarmSwarmBackend`` re-reads the remote backends and their models every second
only while one of them says ``loading`` (``src/Backends/SwarmSwarmBackend.cs``), and
``SelectModel`` with a ``backendId`` no backend matches answers ``Model failed to load.``
(``ModelsAPI.SelectModelInternal`` → ``BackendHandler.LoadModelOnAll``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from service_support import ApiClient, models_discovered, served

pytestmark = pytest.mark.anyio


async def backends_of(client: ApiClient) -> dict[str, Any]:
    status, backends = await client.call("ListBackends", {"nonreal": True, "full_data": True})
    assert status == 200, backends
    return backends


async def test_list_backends_says_loading_until_the_models_are_known_then_running(
    tmp_path: Path,
) -> None:
    async with served(tmp_path, AutoRefresh=True) as world:
        client = world.client("ann")
        await client.new_session()
        polls: list[str] = []
        models: list[str] = []
        with anyio.fail_after(600):
            while True:  # what SwarmSwarmBackend does while a remote backend is loading
                (backend,) = (await backends_of(client)).values()
                polls.append(backend["status"])
                _, current = await client.call("GetCurrentStatus")
                assert current["backend_status"]["any_loading"] is (backend["status"] == "loading")
                if backend["status"] != "loading":
                    break
                await anyio.sleep(1.0)
        _, listing = await client.call("ListModels", {"path": "", "depth": 2})
        models = [str(model["name"]) for model in listing["files"]]
        assert world.service.backends[0].catalog is not None
    assert polls[0] == "loading" and polls[-1] == "running"
    assert set(polls) == {"loading", "running"} and len(polls) > 30  # a cold worker booted
    assert models  # the SwarmUI re-read them once running


async def test_a_backend_whose_models_nobody_discovers_is_running_not_loading_forever(
    tmp_path: Path,
) -> None:
    async with served(tmp_path, AutoRefresh=False) as world:
        client = world.client("ann")
        await client.new_session()
        (backend,) = (await backends_of(client)).values()
    assert backend["status"] == "running"


async def test_select_model_on_a_backend_id_that_is_not_there_fails_as_swarmui_does(
    tmp_path: Path,
) -> None:
    async with served(tmp_path, AutoRefresh=True) as world:
        await models_discovered(world)
        client = world.client("ann")
        await client.new_session()
        (backend_id,) = await backends_of(client)
        _, listing = await client.call("ListModels", {"path": "", "depth": 2})
        model = str(listing["files"][0]["name"])
        ours = await client.call("SelectModel", {"model": model, "backendId": int(backend_id)})
        as_text = await client.call("SelectModel", {"model": model, "backendId": backend_id})
        foreign = await client.call("SelectModel", {"model": model, "backendId": 99})
        unknown = await client.call("SelectModel", {"model": "no-such-model", "backendId": 99})
    assert ours == as_text == (200, {"success": True})
    assert foreign == (200, {"error": "Model failed to load."})
    assert unknown == (200, {"error": "Model not found."})  # the model is checked first

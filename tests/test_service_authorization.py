"""Who may call what: every route, every role, and no token at all.

Expected minimum roles come from SwarmUI's permission defaults (specs/swarmui-api.md §7) and
``use_runpod_serverless`` (POWERUSERS and above) on everything that uses a RunPod backend.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from service_support import ApiClient, served

from orchestrator.accounts import Role

pytestmark = pytest.mark.anyio

ORDER = (Role.GUEST, Role.USER, Role.POWERUSER, Role.ADMIN, Role.OWNER)
# route -> (least role allowed, a body that is cheap to answer)
MATRIX: dict[str, tuple[Role, dict[str, Any]]] = {
    "GetNewSession": (Role.GUEST, {}),
    "ListBackends": (Role.POWERUSER, {}),
    "ListModels": (Role.GUEST, {"path": "", "depth": 1}),
    "DescribeModel": (Role.GUEST, {"modelName": "none"}),
    "SelectModel": (Role.POWERUSER, {"model": "no-such-model"}),
    "GenerateText2Image": (Role.POWERUSER, {}),  # refused for a missing 'images' after the check
    "InterruptAll": (Role.USER, {}),
    "GetCurrentStatus": (Role.GUEST, {}),
    "TriggerRefresh": (Role.GUEST, {}),
    "FreeBackendMemory": (Role.POWERUSER, {}),
    "SetAPIKey": (Role.USER, {}),
    "GetAPIKeyStatus": (Role.USER, {"keyType": "runpod_api"}),
    "GetStatus": (Role.POWERUSER, {}),
    "RefreshModels": (Role.POWERUSER, {"unused": True}),
    "Prewarm": (Role.POWERUSER, {"workers": 0}),
    "RunPod/GetStatus": (Role.POWERUSER, {}),
    "RunPod/RefreshModels": (Role.POWERUSER, {"unused": True}),
    "RunPod/Prewarm": (Role.POWERUSER, {"workers": 0}),
}
USERS = {role.value: role for role in ORDER}


def allowed(role: Role, least: Role) -> bool:
    return ORDER.index(role) >= ORDER.index(least)


async def test_every_route_refuses_a_request_without_a_valid_token(tmp_path: Path) -> None:
    async with served(tmp_path, users=USERS) as world:
        for token in (None, "sp_not-a-token", world.tokens["owner"] + "x"):
            client = ApiClient(world.service.url, token)
            for route in [*MATRIX, "GenerateText2ImageWS", "NoSuchRoute"]:
                status, body = await client.raw(
                    "POST",
                    f"/API/{route}",
                    data=b"{}",
                    headers={"Content-Type": "application/json"},
                )
                assert status == 401, (route, token)
                assert json.loads(body)["error_id"] == "unauthorized"


@pytest.mark.parametrize("role", ORDER, ids=lambda role: role.value)
async def test_each_role_reaches_exactly_the_routes_its_permissions_allow(
    tmp_path: Path, role: Role
) -> None:
    async with served(tmp_path, users=USERS, IdleTimeoutSec=0) as world:
        client = world.client(role.value)
        await client.new_session()
        for route, (least, body) in MATRIX.items():
            status, answer = await client.call(route, body)
            refused = answer.get("error_id") == "bad_permissions"
            if allowed(role, least):
                assert not refused and status in (200,), (role, route, status, answer)
            else:
                assert refused and status == 400, (role, route, status, answer)
                assert answer["error"] == "You lack permissions for this route."


@pytest.mark.parametrize("role", ORDER, ids=lambda role: role.value)
async def test_the_websocket_generation_route_checks_permissions_too(
    tmp_path: Path, role: Role
) -> None:
    async with served(tmp_path, users=USERS) as world:
        client = world.client(role.value)
        await client.new_session()
        messages, _ = await client.generate_ws({"prompt": "x"})  # no 'images': refused cheaply
        if allowed(role, Role.POWERUSER):
            assert messages[0] == {"error": "Missing required parameter 'images'"}
        else:
            assert messages[0]["error_id"] == "bad_permissions"


async def test_a_websocket_without_a_token_is_refused_before_the_upgrade(tmp_path: Path) -> None:
    async with served(tmp_path) as world, aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"{world.service.url}/API/GenerateText2ImageWS")
        assert refused.value.status == 401

"""The fake SwarmUI's permissions, accounts and Authorization gateway (§2.4, §7; §11 items 12-14).

Also the v2 worker gateway (worker-protocols.md v2): a bearer token on every HTTP route, ``/View``
and the WebSocket upgrade.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from test_fake_swarmui import gen, only, swarm

from orchestrator.emulator.swarm import SwarmConfig

pytestmark = pytest.mark.anyio

BAD_PERMISSIONS = {"error_id": "bad_permissions", "error": "You lack permissions for this route."}
UNAUTHORIZED_LOGIN = {"error": "Invalid or unauthorized."}


# -- 12: permissions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "route", "body"),
    [
        ("guest", "GenerateText2Image", gen()),
        ("guest", "InterruptAll", {}),
        ("user", "ListBackends", {}),
        ("user", "SelectModel", {"model": "dreamshaper_8"}),
        ("user", "FreeBackendMemory", {}),
        ("guest", "SetAPIKey", {"keyType": "civitai_api", "key": "k"}),
    ],
)
async def test_12_a_restricted_role_gets_400_bad_permissions(
    role: str, route: str, body: dict[str, Any]
) -> None:
    async with swarm(SwarmConfig(role=role)) as s:
        status, answer = await s.post(route, {"session_id": await s.session(), **body})
        assert (status, answer) == (400, BAD_PERMISSIONS)


async def test_12_routes_within_the_role_still_work() -> None:
    async with swarm(SwarmConfig(role="guest")) as s:
        sid = await s.session()
        status, answer = await s.post("GetCurrentStatus", {"session_id": sid})
        assert status == 200 and "backend_status" in answer
        status, answer = await s.post("ListModels", {"session_id": sid, "path": "", "depth": 1})
        assert status == 200 and "files" in answer


async def test_12_permission_denial_over_the_websocket_is_a_message() -> None:
    async with swarm(SwarmConfig(role="guest")) as s:
        messages, code = await s.ws({"session_id": await s.session(), **gen()})
        assert [message for _, message in messages] == [BAD_PERMISSIONS]
        assert code == aiohttp.WSCloseCode.OK


async def test_12_the_check_comes_after_the_session_and_route_checks() -> None:
    async with swarm(SwarmConfig(role="guest")) as s:
        status, answer = await s.post("ListBackends", {})
        assert (status, answer["error"]) == (400, "missing session id")
        status, answer = await s.post("NoSuchRoute", {"session_id": await s.session()})
        assert (status, answer["error_id"]) == (400, "bad_route")


async def test_12_get_new_session_reports_the_roles_flags() -> None:
    async with swarm(SwarmConfig(role="user")) as s:
        _, answer = await s.post("GetNewSession", {})
        assert "basic_image_generation" in answer["permissions"]
        assert "*" not in answer["permissions"]
        assert "view_backends_list" not in answer["permissions"]
    async with swarm() as s:
        _, answer = await s.post("GetNewSession", {})
        assert answer["permissions"][0] == "*"


async def test_12_an_explicit_permission_set_replaces_the_role() -> None:
    flags = ("fundamental_generate_tab_access", "view_backends_list")
    async with swarm(SwarmConfig(permissions=flags)) as s:
        sid = await s.session()
        assert (await s.post("ListBackends", {"session_id": sid}))[0] == 200
        assert (await s.post("GenerateText2Image", {"session_id": sid, **gen()}))[1] == (
            BAD_PERMISSIONS
        )


async def test_12_parameters_with_a_permission_are_refused_without_it() -> None:
    async with swarm(SwarmConfig(role="user")) as s:
        answer = await s.call("GenerateText2Image", gen(exactbackendid=0))
        assert answer == {"error": "You do not have permission to use parameter Exact Backend ID."}
        assert len((await s.call("GenerateText2Image", gen(donotsave=True)))["images"]) == 1


def test_12_an_unknown_role_is_refused_at_start() -> None:
    from orchestrator.emulator.swarm import FakeSwarmUI

    with pytest.raises(ValueError, match="unknown role"):
        FakeSwarmUI(SwarmConfig(role="superhero"))


# -- 14: accounts -------------------------------------------------------------------------------


async def test_14_with_accounts_on_get_new_session_needs_a_valid_swarm_token() -> None:
    async with swarm(SwarmConfig(accounts_required=True)) as s:
        assert await s.post("GetNewSession", {}) == (200, UNAUTHORIZED_LOGIN)
        bogus = {"Cookie": "swarm_token=616c696365.abcdef.0123456789"}
        assert await s.post("GetNewSession", {}, headers=bogus) == (200, UNAUTHORIZED_LOGIN)
        token = s.fake.create_auth_token("alice")
        assert token.startswith(b"alice".hex() + ".") and token.count(".") == 2
        status, answer = await s.post(
            "GetNewSession", {}, headers={"Cookie": f"swarm_token={token}"}
        )
        assert status == 200 and answer["user_id"] == "alice"
        # other routes need only the session, which is bound to the user
        images = await s.post(
            "GenerateText2Image", {"session_id": answer["session_id"], **gen(images=1)}
        )
        assert images[1]["images"][0].startswith("View/alice/raw/")


async def test_14_revoked_tokens_no_longer_log_in_but_sessions_live_on() -> None:
    async with swarm(SwarmConfig(accounts_required=True)) as s:
        cookie = {"Cookie": f"swarm_token={s.fake.create_auth_token('bob')}"}
        _, answer = await s.post("GetNewSession", {}, headers=cookie)
        s.fake.revoke_auth_tokens()
        assert await s.post("GetNewSession", {}, headers=cookie) == (200, UNAUTHORIZED_LOGIN)
        status, _ = await s.post("GetCurrentStatus", {"session_id": answer["session_id"]})
        assert status == 200


async def test_14_localhost_bypass_makes_local_requests_the_local_user() -> None:
    async with swarm(SwarmConfig(accounts_required=True, allow_localhost_bypass=True)) as s:
        status, answer = await s.post("GetNewSession", {})
        assert status == 200 and answer["user_id"] == "local"
        forwarded = {"X-Forwarded-For": "203.0.113.9"}
        assert await s.post("GetNewSession", {}, headers=forwarded) == (200, UNAUTHORIZED_LOGIN)


async def test_14_without_accounts_x_swarm_user_id_picks_the_user() -> None:
    async with swarm() as s:
        _, answer = await s.post("GetNewSession", {}, headers={"X-SWARM-USER_ID": "carol"})
        assert answer["user_id"] == "carol"


async def test_view_refuses_another_users_outputs_without_view_others_outputs() -> None:
    async with swarm(SwarmConfig(accounts_required=True, role="user")) as s:
        cookie = {"Cookie": f"swarm_token={s.fake.create_auth_token('alice')}"}
        _, login = await s.post("GetNewSession", {}, headers=cookie)
        _, answer = await s.post("GenerateText2Image", {"session_id": login["session_id"], **gen()})
        url = f"{s.url}/{answer['images'][0].replace(' ', '%20')}"
        async with s.http.get(url, headers=cookie) as response:
            assert response.status == 200
        other = {"Cookie": f"swarm_token={s.fake.create_auth_token('mallory')}"}
        async with s.http.get(url, headers=other) as response:
            assert response.status == 400
            assert await response.json() == {
                "error": "unauthorized - you may not view other users' outputs",
                "error_id": "unauthorized",
            }


# -- 13 and the v2 gateway: the required Authorization header -------------------------------------

TOKEN = "Bearer lease-token"


@pytest.mark.parametrize(
    "route",
    ["GetNewSession", "GetCurrentStatus", "ListBackends", "GenerateText2Image", "NoSuchRoute"],
)
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": ""}])
async def test_13_every_http_route_needs_the_exact_authorization(
    route: str, headers: dict[str, str]
) -> None:
    async with (
        swarm(SwarmConfig(required_authorization=TOKEN)) as s,
        s.http.post(f"{s.url}/API/{route}", json={}, headers=headers) as response,
    ):
        assert response.status == 401
        assert await response.text() == "Unauthorized"


async def test_13_non_api_paths_and_get_redirects_are_guarded_too() -> None:
    async with swarm(SwarmConfig(required_authorization=TOKEN)) as s:
        for path in ("/API/GetNewSession", "/View/local/raw/x.png", "/", "/Text2Image"):
            async with s.http.get(f"{s.url}{path}", allow_redirects=False) as response:
                assert (response.status, await response.text()) == (401, "Unauthorized")


async def test_13_the_right_token_opens_http_view_and_websocket() -> None:
    async with swarm(SwarmConfig(required_authorization=TOKEN)) as s:
        auth = {"Authorization": TOKEN}
        status, login = await s.post("GetNewSession", {}, headers=auth)
        assert status == 200
        body = {"session_id": login["session_id"], **gen()}
        _, answer = await s.post("GenerateText2Image", body, headers=auth)
        url = f"{s.url}/{answer['images'][0].replace(' ', '%20')}"
        async with s.http.get(url, headers=auth) as response:
            assert response.status == 200
        async with s.http.get(url) as response:
            assert response.status == 401
        messages, _ = await s.ws({**body, "donotsave": True}, headers=auth)
        assert len(only(messages, "image")) == 1
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await s.ws(body)
        assert refused.value.status == 401


async def test_13_auth_bypass_ips_skip_the_header_check() -> None:
    config = SwarmConfig(required_authorization=TOKEN, auth_bypass_ips=("127.0.0.1",))
    async with swarm(config) as s:
        status, answer = await s.post("GetNewSession", {})
        assert status == 200 and "session_id" in answer

"""Bad input never gets a 500 or a traceback: SwarmUI's error envelope, every time."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from service_support import served

pytestmark = pytest.mark.anyio

JSON = {"Content-Type": "application/json"}
ROUTES = (
    "GetNewSession", "ListBackends", "ListModels", "DescribeModel", "SelectModel",
    "GenerateText2Image", "InterruptAll", "GetCurrentStatus", "TriggerRefresh",
    "FreeBackendMemory", "SetAPIKey", "GetAPIKeyStatus", "GetStatus", "RefreshModels", "Prewarm",
)  # fmt: skip
WRONG_TYPES: dict[str, dict[str, Any]] = {
    "ListModels": {"path": [], "depth": "deep"},
    "DescribeModel": {"modelName": {"a": 1}},
    "SelectModel": {"model": ["x"]},
    "GenerateText2Image": {"images": 1.5, "prompt": "x"},
    "InterruptAll": {"other_sessions": "maybe"},
    "FreeBackendMemory": {"system_ram": 3},
    "SetAPIKey": {"keyType": "runpod_api", "key": {"k": "v"}},
    "GetAPIKeyStatus": {"keyType": ["runpod_api"]},
    "Prewarm": {"workers": "many"},
}


def envelope(status: int, raw: bytes) -> dict[str, object]:
    assert status in (200, 400, 401, 404), status
    body = json.loads(raw)
    assert isinstance(body, dict) and isinstance(body.get("error"), str), body
    assert "Traceback" not in body["error"]
    return body


async def test_wrong_types_and_missing_fields_are_handler_errors_with_200(tmp_path: Path) -> None:
    async with served(tmp_path) as world:
        client = world.client("ann")
        await client.new_session()
        for route, body in WRONG_TYPES.items():
            status, answer = await client.call(route, body)
            assert status == 200 and answer["error"].startswith("Invalid value"), (route, answer)
        for route in ("ListModels", "DescribeModel", "SelectModel", "GenerateText2Image"):
            status, answer = await client.call(route, {})
            assert status == 200 and "Missing required parameter" in answer["error"], route


async def test_malformed_requests_are_refused_by_the_pipeline(tmp_path: Path) -> None:
    async with served(tmp_path) as world:
        client = world.client("ann")
        await client.new_session()
        for route in ROUTES:
            cases = [
                ("POST", b"not json", JSON, "Request body is not valid JSON"),
                ("POST", b"null", JSON, "null input"),
                ("POST", b"[1, 2]", JSON, "Request body must be a JSON object"),
                ("POST", b"{}", {"Content-Type": "text/plain"}, "Wrong content type"),
                ("POST", b"", JSON, "bad content length"),
            ]
            for method, data, headers, error in cases:
                status, raw = await client.raw(method, f"/API/{route}", data=data, headers=headers)
                body = envelope(status, raw)
                assert status == 400 and body["error"] == error, (route, error, body)


async def test_a_huge_body_is_refused_without_reading_it(tmp_path: Path) -> None:
    async with served(tmp_path) as world:
        client = world.client("ann")
        huge = io.BytesIO(b'{"prompt": "' + b"x" * (11 * 1024 * 1024) + b'"}')
        status, raw = await client.raw("POST", "/API/GenerateText2Image", data=huge, headers=JSON)
        assert status == 400 and envelope(status, raw)["error"] == "bad content length"


async def test_get_on_post_routes_and_unknown_routes_get_envelopes(tmp_path: Path) -> None:
    async with served(tmp_path) as world:
        client = world.client("ann")
        await client.new_session()
        for route in ROUTES:
            if route in ("GetStatus", "RefreshModels"):
                continue  # the seed documents GET for these
            status, raw = await client.raw("GET", f"/API/{route}")
            assert status == 400 and envelope(status, raw)["error_id"] == "bad_request_method"
        status, answer = await client.call("NoSuchRoute", {})
        assert (status, answer["error_id"]) == (400, "bad_route")
        status, raw = await client.raw("GET", "/not/an/api")
        assert status == 404 and envelope(status, raw)["error_id"] == "bad_route"
        status, answer = await client.call("ListBackends", {}, session=False)
        assert (status, answer["error"]) == (400, "missing session id")


async def test_route_names_are_case_insensitive_and_the_seed_paths_take_get(tmp_path: Path) -> None:
    async with served(tmp_path) as world:
        client = world.client("ann")
        status, raw = await client.raw("GET", "/API/RunPod/GetStatus")
        assert status == 200 and json.loads(raw)["success"] is True
        status, raw = await client.raw("POST", "/api/getstatus", data=b"{}", headers=JSON)
        assert status == 200 and json.loads(raw)["total_backends"] == 1


async def test_a_websocket_that_sends_garbage_gets_an_error_message(tmp_path: Path) -> None:
    import aiohttp

    async with served(tmp_path) as world, aiohttp.ClientSession() as http:
        headers = world.client("ann").headers()
        async with http.ws_connect(
            f"{world.service.url}/API/GenerateText2ImageWS", headers=headers
        ) as ws:
            await ws.send_str("not json")
            message = await ws.receive_json()
            assert message["error"] == "Request message is not valid JSON"

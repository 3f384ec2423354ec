"""The fake SwarmUI behaves like SwarmUI (specs/swarmui-api.md §11), checked with plain aiohttp.

Each test names the checklist item it covers. All tests run in looptime's virtual time.
Sibling files, one per concern, reuse this file's helpers: ``test_fake_swarmui_auth.py``
(items 12-14, the v2 gateway), ``test_fake_swarmui_routes.py`` (38, 40, 42, 43, idleness) and
``test_fake_swarmui_faults.py`` (the fault script, 28, 29).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import anyio
import pytest
from PIL import Image

from orchestrator.emulator.swarm import (
    BACKEND_STATES,
    DEFAULT_MODELS,
    BackendState,
    FakeSwarmUI,
    SwarmConfig,
    SwarmFaults,
    render_png,
)

pytestmark = pytest.mark.anyio

SDXL = "OfficialStableDiffusion/sd_xl_base_1.0.safetensors"
MODEL_KEYS = {
    "name", "title", "author", "description", "preview_image", "loaded", "architecture",
    "class", "compat_class", "resolution", "standard_width", "standard_height", "license",
    "date", "prediction_type", "usage_hint", "trigger_phrase", "merged_from", "tags",
    "is_supported_model_format", "is_negative_embedding", "lora_default_weight",
    "lora_default_confinement", "local", "time_created", "time_modified", "hash",
    "hash_sha256", "special_format",
}  # fmt: skip
INVALID_SESSION = {
    "error": "Invalid session ID. You may need to refresh the page.",
    "error_id": "invalid_session_id",
}


@dataclass
class Swarm:
    """A running fake and a plain HTTP session to poke it with."""

    fake: FakeSwarmUI
    http: aiohttp.ClientSession
    url: str

    async def post(
        self, route: str, body: dict[str, Any], **kwargs: Any
    ) -> tuple[int, dict[str, Any]]:
        async with self.http.post(f"{self.url}/API/{route}", json=body, **kwargs) as response:
            return response.status, await response.json(content_type=None)

    async def session(self) -> str:
        status, body = await self.post("GetNewSession", {})
        assert status == 200
        return str(body["session_id"])

    async def call(self, route: str, body: dict[str, Any]) -> dict[str, Any]:
        status, answer = await self.post(route, {"session_id": await self.session(), **body})
        assert status == 200, answer
        return answer

    async def ws(
        self, body: dict[str, Any], route: str = "GenerateText2ImageWS", **kwargs: Any
    ) -> tuple[list[tuple[float, dict[str, Any]]], int | None]:
        """Send one WS request; return (loop time, message) pairs and the close code."""
        messages: list[tuple[float, dict[str, Any]]] = []
        async with self.http.ws_connect(f"{self.url}/API/{route}", **kwargs) as ws:
            await ws.send_json(body)
            async for message in ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    messages.append((anyio.current_time(), json.loads(message.data)))
            return messages, ws.close_code


@contextlib.asynccontextmanager
async def swarm(config: SwarmConfig | None = None) -> AsyncIterator[Swarm]:
    fake = FakeSwarmUI(config or SwarmConfig(), faults=SwarmFaults())
    url = await fake.start()
    try:
        async with aiohttp.ClientSession() as http:
            yield Swarm(fake, http, url)
    finally:
        await fake.stop()


async def eventually(predicate: Callable[[], bool], within: float = 5.0) -> None:
    """Wait (in loop time) until ``predicate()`` holds; fail after ``within`` seconds."""
    for _ in range(int(within / 0.05)):
        if predicate():
            return
        await anyio.sleep(0.05)
    raise AssertionError("condition not reached in time")


def gen(**extra: Any) -> dict[str, Any]:
    """A small, fast generation body."""
    return {"images": 1, "prompt": "a cat", "width": 64, "height": 64, "steps": 4, **extra}


def png_of(data_url: str) -> Image.Image:
    assert data_url.startswith("data:image/png;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1])))
    image.load()
    return image


def only(messages: list[tuple[float, dict[str, Any]]], key: str) -> list[dict[str, Any]]:
    return [message for _, message in messages if key in message]


# -- 1-11: the pipeline ---------------------------------------------------------------


async def test_01_get_new_session_returns_a_lowercase_hex_session_and_a_constant_server_id() -> (
    None
):
    async with swarm() as s:
        _, first = await s.post("GetNewSession", {})
        _, second = await s.post("GetNewSession", {})
        assert re.fullmatch(r"[0-9a-f]{40}", first["session_id"])
        assert first["session_id"] != second["session_id"]
        assert set(first) == {
            "session_id", "user_id", "output_append_user", "version", "server_id", "permissions"
        }  # fmt: skip
        assert first["server_id"] == second["server_id"] == s.fake.server_id
        assert re.fullmatch(r"[0-9a-f-]{36}", first["server_id"])
        assert isinstance(first["permissions"], list)


async def test_02_route_names_are_case_insensitive_but_argument_keys_are_not() -> None:
    async with swarm() as s:
        status, body = await s.post("getnewsession", {})
        assert status == 200 and "session_id" in body
        sid = body["session_id"]
        _, answer = await s.post("LISTMODELS", {"session_id": sid, "Path": "", "depth": 1})
        assert answer == {"error": "Missing required parameter 'path'"}


async def test_03_get_on_an_api_route_redirects_to_no_get_api() -> None:
    async with swarm() as s:
        url = f"{s.url}/API/GetNewSession"
        response = await s.http.get(url, allow_redirects=False)
        response.release()
        assert response.status == 302
        assert response.headers["Location"] == "/Error/NoGetAPI"
        assert "json" not in response.content_type


async def test_the_root_redirects_to_the_ui_as_swarmui_does() -> None:
    # SwarmUI: WebApp.MapGet("/", () => Results.Redirect("/Text2Image")); health checks (the
    # HartsyAI worker's `health` and keepalive pings) GET the root without following redirects.
    async with swarm() as s:
        root = await s.http.get(f"{s.url}/", allow_redirects=False)
        root.release()
        assert (root.status, root.headers["Location"]) == (302, "/Text2Image")
        async with s.http.get(f"{s.url}/") as page:
            assert (page.status, page.url.path, page.content_type) == (
                200,
                "/Text2Image",
                "text/html",
            )


async def test_the_root_is_behind_the_same_authorization_as_the_api() -> None:
    async with swarm(SwarmConfig(required_authorization="Bearer k")) as s:
        refused = await s.http.get(f"{s.url}/", allow_redirects=False)
        refused.release()
        admitted = await s.http.get(
            f"{s.url}/", allow_redirects=False, headers={"Authorization": "Bearer k"}
        )
        admitted.release()
    assert (refused.status, admitted.status) == (401, 302)


async def test_04_wrong_content_type_and_empty_body_are_refused() -> None:
    async with swarm() as s:
        url = f"{s.url}/API/GetNewSession"
        async with s.http.post(url, data="{}", headers={"Content-Type": "text/plain"}) as r:
            assert r.status == 400
            assert await r.json() == {"error_id": "basic_api", "error": "Wrong content type"}
        async with s.http.post(url, data=b"", headers={"Content-Type": "application/json"}) as r:
            assert r.status == 400
            assert await r.json() == {"error_id": "basic_api", "error": "bad content length"}


async def test_05_missing_session_id_is_refused_even_on_an_unknown_route() -> None:
    async with swarm() as s:
        for route in ("ListBackends", "NoSuchRoute"):
            status, body = await s.post(route, {})
            assert status == 400
            assert body == {"error_id": "basic_api", "error": "missing session id"}


async def test_06_the_x_session_id_header_is_accepted() -> None:
    async with swarm() as s:
        sid = await s.session()
        status, body = await s.post("GetCurrentStatus", {}, headers={"X-Session-ID": sid})
        assert status == 200 and set(body) == {"status", "backend_status", "supported_features"}


async def test_07_an_unknown_session_is_401_invalid_session_id_on_http_and_ws() -> None:
    async with swarm() as s:
        status, body = await s.post("GetCurrentStatus", {"session_id": "ab" * 20})
        assert (status, body) == (401, INVALID_SESSION)
        messages, code = await s.ws({**gen(), "session_id": "ab" * 20})
        assert [message for _, message in messages] == [INVALID_SESSION]
        assert code == aiohttp.WSCloseCode.OK


async def test_08_invalidated_sessions_are_refused_and_new_ones_work() -> None:
    async with swarm() as s:
        old = await s.session()
        made = s.fake.create_session()
        s.fake.invalidate_sessions()
        for sid in (old, made):
            status, body = await s.post("GetCurrentStatus", {"session_id": sid})
            assert (status, body["error_id"]) == (401, "invalid_session_id")
        status, _ = await s.post("GetCurrentStatus", {"session_id": await s.session()})
        assert status == 200


async def test_08_scripted_invalid_session_answers_the_next_n_calls() -> None:
    async with swarm() as s:
        sid = await s.session()
        s.fake.faults.invalid_session(times=2)
        statuses = [(await s.post("GetCurrentStatus", {"session_id": sid}))[0] for _ in range(3)]
        assert statuses == [401, 401, 200]


async def test_09_a_valid_session_on_an_unknown_route_is_bad_route() -> None:
    async with swarm() as s:
        status, body = await s.post("NoSuchRoute", {"session_id": await s.session()})
        assert (status, body) == (400, {"error_id": "bad_route", "error": "Unknown API route"})


async def test_10_transport_mismatches_are_bad_request_method() -> None:
    async with swarm() as s:
        sid = await s.session()
        status, body = await s.post("GenerateText2ImageWS", {"session_id": sid, **gen()})
        assert status == 400 and body["error_id"] == "bad_request_method"
        messages, _ = await s.ws({"session_id": sid, **gen()}, route="GenerateText2Image")
        assert [message for _, message in messages] == [
            {
                "error_id": "bad_request_method",
                "error": "API route needs HTTP, request is websocket",
            }
        ]


@pytest.mark.parametrize(
    ("route", "body", "error"),
    [
        ("GenerateText2Image", {"prompt": "x"}, "Missing required parameter 'images'"),
        ("ListModels", {"depth": 1}, "Missing required parameter 'path'"),
        ("ListModels", {"path": ""}, "Missing required parameter 'depth'"),
        ("DescribeModel", {}, "Missing required parameter 'modelName'"),
        ("SelectModel", {}, "Missing required parameter 'model'"),
        (
            "GenerateText2Image",
            {"images": "two"},
            "Invalid value 'two' for parameter 'images', must be type 'Int32'",
        ),
        (
            "GenerateText2Image",
            {"images": 1.0},
            "Invalid value '1.0' for parameter 'images', must be type 'Int32'",
        ),
    ],
)
async def test_11_route_argument_errors_are_200_with_the_exact_text(
    route: str, body: dict[str, Any], error: str
) -> None:
    async with swarm() as s:
        status, answer = await s.post(route, {"session_id": await s.session(), **body})
        assert (status, answer) == (200, {"error": error})


async def test_11_string_integers_bind_to_int_arguments() -> None:
    async with swarm() as s:
        answer = await s.call("GenerateText2Image", gen(images="2", donotsave=True))
        assert len(answer["images"]) == 2


# -- 13: the Authorization header ------------------------------------------------------


async def test_13_a_required_authorization_guards_api_websocket_and_view() -> None:
    token = "Bearer s3cret"
    async with swarm(SwarmConfig(required_authorization=token)) as s:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            async with s.http.post(
                f"{s.url}/API/GetNewSession", json={}, headers=headers
            ) as response:
                assert response.status == 401
                assert await response.text() == "Unauthorized"
            with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
                await s.ws({}, headers=headers)
            assert caught.value.status == 401
            async with s.http.get(f"{s.url}/View/local/x.png", headers=headers) as response:
                assert response.status == 401
        status, body = await s.post("GetNewSession", {}, headers={"Authorization": token})
        assert status == 200 and "session_id" in body


# -- 15-23: generation over HTTP ------------------------------------------------------


async def test_15_16_donotsave_returns_exactly_n_png_data_urls_of_the_requested_size() -> None:
    async with swarm() as s:
        answer = await s.call(
            "GenerateText2Image", gen(images=3, width=96, height=80, donotsave=True)
        )
        assert list(answer) == ["images"]
        assert len(answer["images"]) == 3
        for entry in answer["images"]:
            image = png_of(entry)
            assert image.format == "PNG" and image.size == (96, 80)


async def test_17_without_donotsave_images_are_saved_and_served_under_view() -> None:
    async with swarm() as s:
        answer = await s.call("GenerateText2Image", gen(images=2, model="sd_xl_base_1.0"))
        pattern = r"View/local/raw/\d{4}-\d{2}-\d{2}/\d{4}\d+-a cat-sd_xl_base_1\.0\.png"
        for entry in answer["images"]:
            assert re.fullmatch(pattern, entry), entry
            quoted = entry.replace(" ", "%20")
            async with s.http.get(f"{s.url}/{quoted}") as response:
                assert response.status == 200
                image = Image.open(io.BytesIO(await response.read()))
                assert image.size == (64, 64)
                assert json.loads(image.info["parameters"])["sui_image_params"]["prompt"] == "a cat"
        async with s.http.get(f"{s.url}/View/local/raw/nope.png") as response:
            assert response.status == 404
            assert await response.json() == {
                "error": "404, file not found.",
                "error_id": "file_not_found",
            }


@pytest.mark.parametrize("key", ["cfg_scale", "CFGScale", "cfgscale", "CFG Scale"])
async def test_18_19_parameter_ids_are_cleaned_before_validation(key: str) -> None:
    async with swarm() as s:
        answer = await s.call("GenerateText2Image", gen(**{key: 200}))
        assert answer == {
            "error": "Invalid value for parameter CFG Scale: Invalid decimal value for param "
            "CFG Scale - '200' - must be between 0 and 100"
        }


async def test_18_unknown_parameters_are_ignored() -> None:
    async with swarm() as s:
        answer = await s.call("GenerateText2Image", gen(donotsave=True, no_such_param="x"))
        assert len(answer["images"]) == 1


async def test_19_out_of_range_steps_give_swarmuis_exact_text() -> None:
    async with swarm() as s:
        answer = await s.call("GenerateText2Image", gen(steps=900))
        assert answer == {
            "error": "Invalid value for parameter Steps: Invalid integer value for param Steps "
            "- '900' - must be between 0 and 500"
        }


async def test_20_an_unknown_model_is_refused_and_a_fuzzy_name_resolves() -> None:
    async with swarm() as s:
        answer = await s.call("GenerateText2Image", gen(model="nope_xl"))
        assert answer == {
            "error": "Invalid value for parameter Model: Invalid model value for param Model - "
            "'nope_xl' - are you sure that model name is correct?"
        }
        answer = await s.call("GenerateText2Image", gen(model="sd_xl_base_1.0", donotsave=True))
        params = json.loads(png_of(answer["images"][0]).info["parameters"])["sui_image_params"]
        assert params["model"] == SDXL
        assert s.fake.current_model == SDXL


async def test_21_explicit_seeds_increment_per_image_and_minus_one_is_random() -> None:
    async with swarm() as s:
        messages, _ = await s.ws({"session_id": await s.session(), **gen(images=3, seed=77)})
        seeds = [
            json.loads(m["metadata"])["sui_image_params"]["seed"] for m in only(messages, "image")
        ]
        assert seeds == [77, 78, 79]
        randoms = set()
        for _ in range(2):
            answer = await s.call("GenerateText2Image", gen(seed=-1, donotsave=True))
            params = json.loads(png_of(answer["images"][0]).info["parameters"])
            randoms.add(params["sui_image_params"]["seed"])
        assert len(randoms) == 2 and all(0 <= seed < 2**31 for seed in randoms)


async def test_21_images_are_deterministic_from_prompt_and_seed() -> None:
    async with swarm() as s:
        answer = await s.call("GenerateText2Image", gen(seed=5, donotsave=True))
        data = base64.b64decode(answer["images"][0].split(",", 1)[1])
        assert data == render_png("a cat", 5, 64, 64, model=SDXL)


async def test_22_a_value_equal_to_ignore_if_is_treated_as_absent() -> None:
    async with swarm() as s:
        body = gen(negativeprompt="", forwardswarmdata=True, donotsave=True)
        messages, _ = await s.ws({"session_id": await s.session(), **body})
        used = only(messages, "raw_swarm_data")[0]["raw_swarm_data"]["params_used"]
        assert "negativeprompt" not in used and "prompt" in used


async def test_23_an_injected_failure_is_a_200_error_on_http_and_an_error_message_on_ws() -> None:
    async with swarm() as s:
        s.fake.faults.generation_error("Out of VRAM", times=2)
        assert await s.call("GenerateText2Image", gen()) == {"error": "Out of VRAM"}
        messages, code = await s.ws({"session_id": await s.session(), **gen()})
        assert only(messages, "error") == [{"error": "Out of VRAM"}]
        assert not only(messages, "image") and code == aiohttp.WSCloseCode.OK


# -- 24-29: the WebSocket sequence -------------------------------------------------------


async def test_24_a_status_object_comes_before_any_progress() -> None:
    async with swarm() as s:
        messages, _ = await s.ws({"session_id": await s.session(), **gen()})
        first = messages[0][1]
        assert set(first) == {"status", "backend_status", "supported_features"}
        first_progress = next(i for i, (_, m) in enumerate(messages) if "gen_progress" in m)
        assert first_progress > 0


async def test_25_progress_is_well_formed_non_decreasing_and_has_jpeg_previews() -> None:
    async with swarm(SwarmConfig(progress_updates=6)) as s:
        messages, _ = await s.ws({"session_id": await s.session(), **gen(images=2)})
        progress = [m["gen_progress"] for m in only(messages, "gen_progress")]
        assert len(progress) == 12
        for index in ("0", "1"):
            mine = [p for p in progress if p["batch_index"] == index]
            current = [p["current_percent"] for p in mine]
            assert current == sorted(current) and all(0 <= c <= 1 for c in current)
        overall = [p["overall_percent"] for p in progress]
        assert overall == sorted(overall) and overall[-1] == 1.0
        assert all(p["request_id"] for p in progress)
        assert all(p["preview"].startswith("data:image/jpeg;base64,") for p in progress)


async def test_25_nopreviews_leaves_previews_out() -> None:
    async with swarm() as s:
        messages, _ = await s.ws({"session_id": await s.session(), **gen(nopreviews=True)})
        progress = only(messages, "gen_progress")
        assert progress and not any("preview" in m["gen_progress"] for m in progress)


async def test_26_images_are_flat_messages_preceded_by_raw_swarm_data_when_asked() -> None:
    async with swarm() as s:
        body = gen(images=2, donotsave=True, forwardswarmdata=True)
        messages, _ = await s.ws({"session_id": await s.session(), **body})
        keys = [next(iter(m)) for _, m in messages if "image" in m or "raw_swarm_data" in m]
        assert keys == ["raw_swarm_data", "image", "raw_swarm_data", "image"]
        for index, image in enumerate(only(messages, "image")):
            assert set(image) == {"image", "batch_index", "request_id", "metadata"}
            assert image["batch_index"] == str(index)
            assert png_of(image["image"]).size == (64, 64)
            assert isinstance(image["metadata"], str)


async def test_27_the_request_ends_with_keep_alive_discard_intention_then_status_and_close() -> (
    None
):
    async with swarm() as s:
        messages, code = await s.ws({"session_id": await s.session(), **gen(donotsave=True)})
        last_image = max(i for i, (_, m) in enumerate(messages) if "image" in m)
        tail = [m for _, m in messages[last_image + 2 :]]
        assert tail[:3] == [
            {"keep_alive": True},
            {"discard_indices": []},
            {"socket_intention": "close"},
        ]
        assert set(tail[3]) == {"status", "backend_status", "supported_features"}
        assert len(tail) == 4
        assert messages[-1][0] - messages[-2][0] == pytest.approx(2.0, abs=0.1)
        assert code == aiohttp.WSCloseCode.OK


async def test_28_a_second_request_on_the_open_socket_continues_the_batch_indices() -> None:
    async with swarm() as s:
        sid = await s.session()
        indices: list[str] = []
        async with s.http.ws_connect(f"{s.url}/API/GenerateText2ImageWS") as ws:
            await ws.send_json({"session_id": sid, **gen(images=2, donotsave=True)})
            sent_second = False
            async for message in ws:
                data = json.loads(message.data)
                if "image" in data:
                    indices.append(data["batch_index"])
                if data.get("socket_intention") == "close" and not sent_second:
                    await ws.send_json({"session_id": sid, **gen(images=1, donotsave=True)})
                    sent_second = True
        assert indices == ["0", "1", "2"]


async def test_29_long_generations_send_keep_alive_at_least_every_30_seconds() -> None:
    async with swarm(SwarmConfig(seconds_per_step=10.0, progress_updates=1)) as s:
        messages, _ = await s.ws({"session_id": await s.session(), **gen(steps=10)})
        during = [t for t, m in messages if m == {"keep_alive": True}]
        assert len(during) >= 4  # 100 s of sampling, plus the one after the images


# -- 30-31: interrupts and status -------------------------------------------------------


async def test_30_interrupt_all_ends_this_sessions_generations_only() -> None:
    async with swarm() as s, anyio.create_task_group() as tasks:
        mine, other = await s.session(), await s.session()
        s.fake.faults.hang_generation(times=3)
        results: dict[str, Any] = {}

        async def ws_generation() -> None:
            results["ws"], _ = await s.ws({"session_id": mine, **gen()})

        async def http_generation(sid: str, name: str) -> None:
            results[name] = await s.post("GenerateText2Image", {"session_id": sid, **gen()})

        tasks.start_soon(ws_generation)
        tasks.start_soon(http_generation, mine, "http")
        tasks.start_soon(http_generation, other, "other")
        await eventually(lambda: s.fake.live_generations == 3)
        assert await s.post("InterruptAll", {"session_id": mine, "other_sessions": False}) == (
            200,
            {"success": True},
        )
        await eventually(lambda: "ws" in results and "http" in results)
        assert s.fake.live_generations == 1
        assert only(results["ws"], "error") == [{"error": "Generation session interrupted."}]
        assert results["http"] == (200, {"images": []})
        assert "other" not in results
        await s.post("InterruptAll", {"session_id": mine, "other_sessions": True})
    assert results["other"] == (200, {"images": []})
    assert s.fake.live_generations == 0


async def test_31_status_counters_rise_during_a_generation_and_return_to_zero() -> None:
    async with swarm(SwarmConfig(seconds_per_step=1.0)) as s, anyio.create_task_group() as tasks:
        sid = await s.session()
        tasks.start_soon(s.post, "GenerateText2Image", {"session_id": sid, **gen(images=2)})
        await anyio.sleep(1.0)
        _, during = await s.post("GetCurrentStatus", {"session_id": sid})
        assert during["status"]["live_gens"] == 1
        assert during["status"]["waiting_gens"] == 1
        await anyio.sleep(10.0)
        _, after = await s.post("GetCurrentStatus", {"session_id": sid})
        assert after["status"] == {
            "waiting_gens": 0, "loading_models": 0, "waiting_backends": 0, "live_gens": 0
        }  # fmt: skip


@pytest.mark.parametrize(
    ("state", "summary", "css_class"),
    [
        ("running", "running", ""),
        ("loading", "loading", "soft"),
        ("idle", "idle", "warn"),
        ("errored", "errored", "error"),
        ("disabled", "all_disabled", "error"),
        ("none", "empty", "error"),
    ],
)
async def test_31_backend_status_follows_the_backend_state(
    state: BackendState, summary: str, css_class: str
) -> None:
    assert state in BACKEND_STATES
    async with swarm() as s:
        s.fake.set_backend_state(state)
        status = await s.call("GetCurrentStatus", {})
        assert status["backend_status"]["status"] == summary
        assert status["backend_status"]["class"] == css_class
        assert status["backend_status"]["any_loading"] is (state == "loading")


async def test_31_the_backend_loads_for_backend_load_s_after_start() -> None:
    async with swarm(SwarmConfig(backend_load_s=20.0)) as s:
        assert (await s.call("ListBackends", {}))["0"]["status"] == "loading"
        await anyio.sleep(20.0)
        assert (await s.call("ListBackends", {}))["0"]["status"] == "running"


# -- 32-37: models and backends -----------------------------------------------------------


async def test_32_list_models_depth_and_path() -> None:
    async with swarm() as s:
        one = await s.call("ListModels", {"path": "", "depth": 1})
        assert one["folders"] == ["OfficialStableDiffusion", "XL"]
        assert [f["name"] for f in one["files"]] == ["dreamshaper_8.safetensors"]
        two = await s.call("ListModels", {"path": "", "depth": 2})
        assert two["folders"] == ["OfficialStableDiffusion", "XL", "XL/Turbo"]
        assert SDXL in [f["name"] for f in two["files"]]
        assert "XL/Turbo/sdxl_turbo.safetensors" not in [f["name"] for f in two["files"]]
        sub = await s.call("ListModels", {"path": "XL", "depth": 5})
        assert [f["name"] for f in sub["files"]] == ["XL/Turbo/sdxl_turbo.safetensors"]


async def test_33_list_models_honours_subtype_and_refuses_bad_subtype_or_sort() -> None:
    async with swarm() as s:
        vae = await s.call("ListModels", {"path": "", "depth": 1, "subtype": "VAE"})
        assert [f["name"] for f in vae["files"]] == ["sdxl_vae.safetensors"]
        bad = await s.call("ListModels", {"path": "", "depth": 1, "subtype": "vae"})
        assert bad == {"error": "Invalid sub-type."}
        bad = await s.call("ListModels", {"path": "", "depth": 1, "sortBy": "Size"})
        assert bad == {"error": "Invalid sort mode 'Size'."}
        names = await s.call("ListModels", {"path": "", "depth": 9, "sortReverse": True})
        listed = [f["name"] for f in names["files"]]
        assert listed == sorted(listed, reverse=True)


async def test_34_model_objects_have_every_key_and_preview_urls() -> None:
    async with swarm() as s:
        listing = await s.call("ListModels", {"path": "", "depth": 9})
        for model in listing["files"]:
            assert set(model) == MODEL_KEYS
            assert model["loaded"] is False and model["local"] is True
            assert isinstance(model["standard_width"], int)
            assert model["preview_image"].startswith("/ViewSpecial/Stable-Diffusion/")
        data = await s.call("ListModels", {"path": "", "depth": 9, "dataImages": True})
        assert all(m["preview_image"].startswith("data:image/") for m in data["files"])


@pytest.mark.parametrize("name", [SDXL, SDXL.removesuffix(".safetensors")])
async def test_35_describe_model_accepts_the_name_with_or_without_extension(name: str) -> None:
    async with swarm() as s:
        answer = await s.call("DescribeModel", {"modelName": name})
        assert answer["model"]["name"] == SDXL
        assert await s.call("DescribeModel", {"modelName": "sd_xl"}) == {
            "error": "Model not found."
        }


async def test_36_select_model_loads_an_exact_name_and_refuses_others() -> None:
    async with swarm(SwarmConfig(model_load_s=4.0)) as s:
        start = anyio.current_time()
        assert await s.call("SelectModel", {"model": SDXL.removesuffix(".safetensors")}) == {
            "success": True
        }
        assert anyio.current_time() - start >= 4.0
        assert s.fake.last_activity_at is not None and s.fake.last_activity_at >= start + 4.0
        assert (await s.call("ListBackends", {"full_data": True}))["0"]["current_model"] == SDXL
        assert await s.call("SelectModel", {"model": "sd_xl_base_1.0"}) == {
            "error": "Model not found."
        }
        s.fake.faults.model_load_failure()
        assert await s.call("SelectModel", {"model": SDXL}) == {"error": "Model failed to load."}


async def test_37_list_backends_has_the_documented_shape() -> None:
    async with swarm() as s:
        full = await s.call("ListBackends", {"nonreal": True, "full_data": True})
        assert list(full) == ["0"]
        entry = full["0"]
        assert set(entry) == {
            "type", "status", "id", "settings", "modcount", "features", "enabled", "title",
            "max_usages", "seconds_since_used", "time_since_used", "can_load_models",
            "current_model",
        }  # fmt: skip
        assert entry["id"] == 0 and entry["status"] == "running"
        assert entry["features"] == list(SwarmConfig().features)
        brief = await s.call("ListBackends", {"nonreal": True})
        assert "current_model" not in brief["0"]


# -- 39-41: other parameters and routes ----------------------------------------------------------


async def test_39_exactbackendid_must_match_an_advertised_backend() -> None:
    async with swarm() as s:
        ok = await s.call("GenerateText2Image", gen(exactbackendid=0, donotsave=True))
        assert len(ok["images"]) == 1
        bad = await s.call("GenerateText2Image", gen(exactbackendid=7))
        assert bad["error"].startswith("Invalid value for parameter Exact Backend ID:")


async def test_40_free_backend_memory_reports_one_backend() -> None:
    async with swarm() as s:
        assert await s.call("FreeBackendMemory", {}) == {"result": True, "count": 1}


async def test_41_init_images_must_be_base64_or_a_server_path() -> None:
    async with swarm() as s:
        good = base64.b64encode(render_png("x", 1, 64, 64)).decode()
        ok = await s.call("GenerateText2Image", gen(initimage=good, donotsave=True))
        assert len(ok["images"]) == 1
        bad = await s.call("GenerateText2Image", gen(init_image="not an image!"))
        assert "Invalid IMAGE value for param Init Image" in bad["error"]


# -- the fake as a worker ----------------------------------------------------------------


async def test_stop_drops_in_flight_generations_like_a_dead_worker() -> None:
    fake = FakeSwarmUI(faults=SwarmFaults())
    url = await fake.start()
    fake.faults.hang_generation()
    sid = fake.create_session()
    async with aiohttp.ClientSession() as http, anyio.create_task_group() as tasks:
        failures: list[BaseException] = []

        async def generate() -> None:
            try:
                await http.post(f"{url}/API/GenerateText2Image", json={"session_id": sid, **gen()})
            except aiohttp.ClientError as exc:
                failures.append(exc)

        tasks.start_soon(generate)
        await eventually(lambda: bool(fake.live_generations))
        await fake.stop()
    assert len(failures) == 1
    assert fake.live_generations == 0 and fake.base_url is None


async def test_generation_counters_and_last_activity_follow_generations() -> None:
    async with swarm(SwarmConfig(seconds_per_step=0.5)) as s:
        assert s.fake.last_activity_at is None
        await s.call("GenerateText2Image", gen(steps=10))
        assert (s.fake.generations_started, s.fake.generations_finished) == (1, 1)
        assert s.fake.last_activity_at == pytest.approx(anyio.current_time(), abs=0.5)


async def test_default_models_include_sdxl_sd15_a_vae_and_a_lora() -> None:
    subtypes = {model.subtype for model in DEFAULT_MODELS}
    assert {"Stable-Diffusion", "VAE", "LoRA"} <= subtypes
    sizes = {
        model.standard_width for model in DEFAULT_MODELS if model.subtype == "Stable-Diffusion"
    }
    assert {512, 1024} <= sizes


async def test_a_client_leaving_mid_generation_ends_it_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR)
    async with swarm() as s:
        sid = await s.session()
        async with s.http.ws_connect(f"{s.url}/API/GenerateText2ImageWS") as ws:
            await ws.send_json({"session_id": sid, **gen()})
            async for message in ws:
                if message.type is aiohttp.WSMsgType.TEXT and "image" in json.loads(message.data):
                    break  # the client saw enough (say, a bad image) and leaves
        await eventually(lambda: s.fake.live_generations == 0)
        await anyio.sleep(5)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []

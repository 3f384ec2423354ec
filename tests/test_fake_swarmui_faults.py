"""The fake SwarmUI's scripted faults, each schedulable ``times=N``; and the
WebSocket's long-running behaviour (§3.2; §11 items 28, 29)."""

from __future__ import annotations

import base64
import binascii
import contextlib
import itertools
import json
from collections.abc import Callable
from typing import Any

import aiohttp
import anyio
import pytest
from test_fake_swarmui import Swarm, gen, only, png_of, swarm

from orchestrator.emulator.swarm import SwarmConfig, SwarmFaults

pytestmark = pytest.mark.anyio


async def generate_http(s: Swarm, sid: str, **extra: Any) -> tuple[int, str]:
    """One HTTP generation; the raw status and body text."""
    body = {"session_id": sid, **gen(donotsave=True, **extra)}
    async with s.http.post(f"{s.url}/API/GenerateText2Image", json=body) as response:
        return response.status, await response.text()


async def raw_ws(s: Swarm, body: dict[str, Any]) -> tuple[list[aiohttp.WSMessage], int | None]:
    """Every frame a WS generation receives (text or not) and the close code."""
    frames: list[aiohttp.WSMessage] = []
    async with s.http.ws_connect(f"{s.url}/API/GenerateText2ImageWS") as ws:
        await ws.send_json(body)
        async for frame in ws:
            frames.append(frame)
        return frames, ws.close_code


def decodes(entry: str) -> bool:
    try:
        base64.b64decode(entry.split(",", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


# -- each fault affects exactly the next N occasions ---------------------------------------------

Check = Callable[[int, str], bool]
"""Whether an HTTP generation's (status, text) shows the fault."""


def shows_error(status: int, text: str) -> bool:
    return bool(json.loads(text) == {"error": "boom"})


def shows_no_images(status: int, text: str) -> bool:
    return bool(json.loads(text) == {"images": []})


def shows_bad_base64(status: int, text: str) -> bool:
    return not decodes(json.loads(text)["images"][0])


def shows_truncation(status: int, text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return True
    return False


def shows_saved_paths(status: int, text: str) -> bool:
    return bool(json.loads(text)["images"][0].startswith("View/local/raw/"))


ARMERS: dict[str, tuple[Callable[[SwarmFaults, int], None], Check]] = {
    "generation_error": (lambda f, n: f.generation_error("boom", times=n), shows_error),
    "no_images": (lambda f, n: f.no_images(times=n), shows_no_images),
    "bad_base64": (lambda f, n: f.bad_base64(times=n), shows_bad_base64),
    "truncated_json": (lambda f, n: f.truncated_json(times=n), shows_truncation),
    "ignore_donotsave": (lambda f, n: f.ignore_donotsave(times=n), shows_saved_paths),
}


@pytest.mark.parametrize("kind", sorted(ARMERS))
async def test_a_fault_armed_times_n_hits_exactly_the_next_n_generations(kind: str) -> None:
    arm, check = ARMERS[kind]
    async with swarm() as s:
        sid = await s.session()
        arm(s.fake.faults, 3)
        hits = []
        for _ in range(5):
            status, text = await generate_http(s, sid)
            assert status == 200
            hits.append(check(status, text))
        assert hits == [True, True, True, False, False]


async def test_drop_connection_times_n_kills_the_next_n_generations() -> None:
    async with swarm() as s:
        sid = await s.session()
        s.fake.faults.drop_connection(times=2)
        outcomes: list[int | None] = []
        for _ in range(3):
            try:
                status, _ = await generate_http(s, sid)
                outcomes.append(status)
            except aiohttp.ClientError:
                outcomes.append(None)
        assert outcomes == [None, None, 200]
        assert s.fake.generations_finished == 3


async def test_clear_disarms_every_fault() -> None:
    async with swarm() as s:
        sid = await s.session()
        faults = s.fake.faults
        faults.no_images(times=5)
        faults.latency("GenerateText2Image", 100.0, times=5)
        faults.slow_generation(50.0)
        faults.clear()
        start = anyio.current_time()
        _, text = await generate_http(s, sid)
        assert anyio.current_time() - start < 5.0
        assert len(json.loads(text)["images"]) == 1 and faults.pending("no_images") == 0


# -- a worker dying mid-generation --------------------------------------------------------------


async def test_a_dying_worker_aborts_the_http_response() -> None:
    async with swarm(SwarmConfig(seconds_per_step=1.0)) as s:
        sid = await s.session()
        s.fake.faults.drop_connection()
        start = anyio.current_time()
        with pytest.raises(aiohttp.ClientError):
            await generate_http(s, sid)
        assert 0 < anyio.current_time() - start < 4.0  # mid-way through 4 steps of 1 s


async def test_a_dying_worker_ends_the_websocket_without_a_close_frame() -> None:
    async with swarm(SwarmConfig(seconds_per_step=1.0)) as s:
        s.fake.faults.drop_connection()
        frames, code = await raw_ws(s, {"session_id": await s.session(), **gen()})
        texts = [json.loads(f.data) for f in frames if f.type is aiohttp.WSMsgType.TEXT]
        assert texts and not any("image" in m or "socket_intention" in m for m in texts)
        assert not any(f.type is aiohttp.WSMsgType.CLOSE for f in frames)
        assert code != aiohttp.WSCloseCode.OK


# -- latency on a route ------------------------------------------------------------------------


async def test_latency_delays_the_next_n_calls_of_one_route_only() -> None:
    async with swarm() as s:
        sid = await s.session()
        s.fake.faults.latency("getcurrentstatus", 7.0, times=2)
        durations = []
        for route in ("ListBackends", "GetCurrentStatus", "GetCurrentStatus", "GetCurrentStatus"):
            start = anyio.current_time()
            status, _ = await s.post(route, {"session_id": sid})
            assert status == 200
            durations.append(round(anyio.current_time() - start))
        assert durations == [0, 7, 7, 0]


async def test_latency_applies_to_the_websocket_route_and_view() -> None:
    async with swarm() as s:
        sid = await s.session()
        _, answer = await s.post("GenerateText2Image", {"session_id": sid, **gen()})
        s.fake.faults.latency("View", 12.0)
        start = anyio.current_time()
        async with s.http.get(f"{s.url}/{answer['images'][0].replace(' ', '%20')}") as response:
            assert response.status == 200
        assert anyio.current_time() - start >= 12.0
        s.fake.faults.latency("GenerateText2ImageWS", 9.0)
        start = anyio.current_time()
        messages, _ = await s.ws({"session_id": sid, **gen()})
        assert messages[0][0] - start >= 9.0


async def test_latency_refuses_negative_seconds() -> None:
    with pytest.raises(ValueError, match="seconds"):
        SwarmFaults().latency("GetCurrentStatus", -1.0)


# -- truncated JSON, empty image lists, bad base64 ----------------------------------------------


async def test_truncated_json_can_target_any_http_route() -> None:
    async with swarm() as s:
        sid = await s.session()
        s.fake.faults.truncated_json(route="ListBackends")
        async with s.http.post(f"{s.url}/API/ListBackends", json={"session_id": sid}) as r:
            text = await r.text()
            assert r.status == 200 and r.content_type == "application/json"
        with pytest.raises(json.JSONDecodeError):
            json.loads(text)
        assert (await s.post("ListBackends", {"session_id": sid}))[0] == 200


async def test_truncated_json_on_the_websocket_cuts_the_next_image_message() -> None:
    async with swarm() as s:
        s.fake.faults.truncated_json(times=1, route="GenerateText2ImageWS")
        frames, code = await raw_ws(s, {"session_id": await s.session(), **gen(images=2)})
        broken, parsed = [], []
        for frame in frames:
            if frame.type is aiohttp.WSMsgType.TEXT:
                try:
                    parsed.append(json.loads(frame.data))
                except ValueError:
                    broken.append(frame.data)
        assert len(broken) == 1 and broken[0].startswith('{"image": ')
        assert [m["batch_index"] for m in parsed if "image" in m] == ["1"]
        assert code == aiohttp.WSCloseCode.OK


async def test_no_images_gives_an_empty_list_on_http_and_no_image_messages_on_ws() -> None:
    async with swarm() as s:
        s.fake.faults.no_images(times=2)
        assert await s.call("GenerateText2Image", gen(images=2)) == {"images": []}
        messages, code = await s.ws({"session_id": await s.session(), **gen(images=2)})
        assert not only(messages, "image") and not only(messages, "error")
        assert only(messages, "socket_intention") and code == aiohttp.WSCloseCode.OK


async def test_bad_base64_is_a_data_url_that_does_not_decode_on_http_and_ws() -> None:
    async with swarm() as s:
        s.fake.faults.bad_base64(times=2)
        (entry,) = (await s.call("GenerateText2Image", gen(donotsave=True)))["images"]
        assert entry.startswith("data:image/png;base64,") and not decodes(entry)
        messages, _ = await s.ws({"session_id": await s.session(), **gen(donotsave=True)})
        (image,) = only(messages, "image")
        assert image["image"].startswith("data:image/png;base64,") and not decodes(image["image"])


async def test_model_load_failure_and_slow_generation() -> None:
    async with swarm(SwarmConfig(seconds_per_step=1.0)) as s:
        s.fake.faults.model_load_failure(times=2)
        for _ in range(2):
            answer = await s.call("SelectModel", {"model": "dreamshaper_8"})
            assert answer == {"error": "Model failed to load."}
        assert await s.call("SelectModel", {"model": "dreamshaper_8"}) == {"success": True}
        s.fake.faults.slow_generation(3.0)
        start = anyio.current_time()
        await s.call("GenerateText2Image", gen(steps=4, donotsave=True))
        assert anyio.current_time() - start == pytest.approx(12.0, abs=0.5)


# -- 28, 29: the socket over time ---------------------------------------------------------------


async def test_28_requests_sent_before_the_close_continue_the_batch_indices() -> None:
    async with swarm() as s:
        sid = await s.session()
        images: list[dict[str, Any]] = []
        intentions = 0
        async with s.http.ws_connect(f"{s.url}/API/GenerateText2ImageWS") as ws:
            await ws.send_json({"session_id": sid, **gen(images=2, donotsave=True)})
            async for frame in ws:
                data = json.loads(frame.data)
                if "image" in data:
                    images.append(data)
                if data.get("socket_intention") == "close":
                    intentions += 1
                    if intentions < 3:
                        await anyio.sleep(1.0)  # within the 2 s the server waits
                        await ws.send_json({"session_id": sid, **gen(images=2, donotsave=True)})
            code = ws.close_code
        assert [image["batch_index"] for image in images] == ["0", "1", "2", "3", "4", "5"]
        assert len({image["request_id"] for image in images}) == 3
        assert all(png_of(image["image"]).size == (64, 64) for image in images)
        assert intentions == 3 and code == aiohttp.WSCloseCode.OK


async def test_28_a_request_after_the_linger_is_not_processed() -> None:
    async with swarm() as s:
        sid = await s.session()
        async with s.http.ws_connect(f"{s.url}/API/GenerateText2ImageWS") as ws:
            await ws.send_json({"session_id": sid, **gen(donotsave=True)})
            images = 0
            async for frame in ws:
                data = json.loads(frame.data)
                images += "image" in data
                if data.get("socket_intention") == "close":
                    await anyio.sleep(2.5)
                    with contextlib.suppress(ConnectionError):
                        await ws.send_json({"session_id": sid, **gen()})
            code = ws.close_code
        assert images == 1 and s.fake.generations_started == 1
        assert code == aiohttp.WSCloseCode.OK


async def test_29_a_long_generation_sends_keep_alive_at_least_every_30_seconds() -> None:
    async with swarm(SwarmConfig(seconds_per_step=20.0, progress_updates=1)) as s:
        start = anyio.current_time()
        messages, _ = await s.ws({"session_id": await s.session(), **gen(steps=10)})
        image_at = next(t for t, m in messages if "image" in m)
        assert image_at - start >= 200.0
        beats = [start] + [t for t, m in messages if m == {"keep_alive": True} and t <= image_at]
        gaps = [later - earlier for earlier, later in itertools.pairwise(beats)]
        assert len(beats) >= 7 and max(gaps) <= 30.0 + 0.5
        assert image_at - beats[-1] <= 30.0 + 0.5


async def test_29_keep_alive_continues_while_waiting_for_the_backend() -> None:
    async with swarm() as s, anyio.create_task_group() as tasks:
        s.fake.set_backend_state("loading")
        result: dict[str, Any] = {}

        async def generate() -> None:
            result["ws"], _ = await s.ws({"session_id": await s.session(), **gen()})

        tasks.start_soon(generate)
        await anyio.sleep(95.0)
        s.fake.set_backend_state("running")
    beats = [t for t, m in result["ws"] if m == {"keep_alive": True}]
    assert len(beats) >= 4  # three while waiting 95 s, one after the image

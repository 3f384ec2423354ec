"""The service answers what aiohttp or the client breaks with SwarmUI's envelopes: no
internal_error, no traceback in the log, no header echoed back, no version in ``Server``."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from pathlib import Path

import aiohttp
import anyio
import pytest
from service_support import served

from orchestrator.emulator import EndpointConfig
from orchestrator.emulator.swarm import SwarmConfig

pytestmark = pytest.mark.anyio

SLOW = EndpointConfig(
    protocol="v2", cold_start_s=10.0, idle_timeout_s=5.0, swarm=SwarmConfig(seconds_per_step=5.0)
)


def no_error_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing the service logged is an error or carries a traceback (the fake SwarmUI of the
    emulator, whose WebSocket the engine closes, logs on its own; it is not the service)."""
    service = [r for r in caplog.records if "orchestrator/emulator/" not in _text(r)]
    loud = [r for r in service if r.levelno >= logging.ERROR or r.exc_info]
    assert not loud, [(r.name, r.getMessage()) for r in loud]
    text = "\n".join(_text(r) for r in service)
    assert "internal error" not in text and "Traceback" not in text


def _text(record: logging.LogRecord) -> str:
    trace = logging.Formatter().formatException(record.exc_info) if record.exc_info else ""
    return f"{record.getMessage()}\n{trace}"


@pytest.mark.parametrize("depth", [65, 1000, 100_000])
async def test_deeply_nested_json_is_refused_with_an_envelope_over_http_and_websocket(
    tmp_path: Path, depth: int, caplog: pytest.LogCaptureFixture
) -> None:
    nested = "[" * depth + "]" * depth
    async with served(tmp_path) as world:
        client = world.client("ann")
        await client.new_session()
        body = f'{{"session_id": "{client.session_id}", "images": 1, "x": {nested}}}'
        status, raw = await client.raw(
            "POST",
            "/API/GenerateText2Image",
            data=body.encode(),
            headers={"Content-Type": "application/json"},
        )
        assert status == 400
        assert json.loads(raw) == {
            "error_id": "basic_api",
            "error": "Request body is nested too deeply (more than 64 levels)",
        }
        async with (
            aiohttp.ClientSession(headers=client.headers()) as http,
            http.ws_connect(f"{client.base_url}/API/GenerateText2ImageWS") as ws,
        ):
            await ws.send_str(body)
            answer = await ws.receive_json()
        assert answer["error_id"] == "basic_api" and "nested too deeply" in answer["error"]
        assert world.endpoint.api_calls == []
    no_error_logged(caplog)


async def test_64_levels_are_still_taken(tmp_path: Path) -> None:
    nested = "[" * 63 + "]" * 63  # inside the body object: 64 levels
    async with served(tmp_path) as world:
        client = world.client("ann")
        await client.new_session()
        body = f'{{"session_id": "{client.session_id}", "x": {nested}}}'
        status, raw = await client.raw(
            "POST", "/API/GetCurrentStatus", data=body.encode(), headers=JSON
        )
        assert status == 200 and "status" in json.loads(raw)


JSON = {"Content-Type": "application/json"}


async def test_a_client_closing_its_websocket_mid_generation_is_no_internal_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with served(tmp_path, SLOW) as world:
        client = world.client("ann")
        await client.new_session()
        request = {"session_id": client.session_id, "images": 1, "prompt": "x", "steps": 8}
        async with (
            aiohttp.ClientSession(headers=client.headers()) as http,
            http.ws_connect(f"{client.base_url}/API/GenerateText2ImageWS") as ws,
        ):
            await ws.send_json(request)
            while True:  # until the worker generates
                message = await ws.receive_json()
                if "gen_progress" in message:
                    break
        backend = world.service.backends[0]
        with anyio.fail_after(60):
            while backend.orch.admission.in_flight:  # noqa: ASYNC110
                await anyio.sleep(0.5)
        assert backend.generations == 0  # cancelled, not counted
        assert not any(w.swarm.busy for w in world.endpoint.running_workers())
    gc.collect()  # nothing of the generation's plumbing left unclosed (it would warn here)
    no_error_logged(caplog)


async def test_a_malformed_header_gets_a_400_that_echoes_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "Bearer tok_SECRET_0123456789"
    async with served(tmp_path) as world:
        host, port = world.service.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"POST /API/GetNewSession HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: {secret}\x01\r\n".encode()
            + b"Content-Length: 2\r\n\r\n{}"
        )
        await writer.drain()
        answer = await reader.read()
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"400"
    assert json.loads(body) == {"error_id": "basic_api", "error": "Bad HTTP request"}
    assert b"tok_SECRET" not in answer and b"aiohttp" not in head
    assert "tok_SECRET" not in caplog.text
    no_error_logged(caplog)


async def test_the_server_header_names_no_version(tmp_path: Path) -> None:
    async with served(tmp_path) as world, aiohttp.ClientSession() as http:
        for method, path in (("POST", "/API/GetNewSession"), ("GET", "/nowhere")):
            async with http.request(method, f"{world.service.url}{path}", json={}) as response:
                assert response.headers["Server"] == "swarmpod"

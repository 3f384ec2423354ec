"""cassette_mocks: a recorded cassette replayed as aioresponses mocks, with no server at all."""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path
from typing import Literal

import aiohttp
import anyio
import pytest
from aioresponses import aioresponses
from support import KEY, world

from orchestrator import Orchestrator, Settings
from orchestrator.emulator import EndpointConfig
from orchestrator.errors import OrchestratorError, TransportError
from orchestrator.replay import (
    Cassette,
    CassetteRecorder,
    add_cassette_mocks,
    cassette_mocks,
    load_cassette,
)
from orchestrator.replay._cassette import Exchange, ExchangeError
from orchestrator.runpod import JobStatus, RunPodClient
from orchestrator.secrets import Secret

pytestmark = pytest.mark.anyio

FIXTURE = Path(__file__).parent / "cassettes" / "cold_start_90s.cassette.jsonl"
PARAMS = {"prompt": "a lighthouse", "width": 64, "height": 64, "steps": 4, "seed": 7}
RUNPOD = "https://api.runpod.ai/v2"


async def record_over_http(path: Path, endpoint: EndpointConfig) -> Cassette:
    """Record one generation of PARAMS with SwarmUI over plain HTTP (no WebSocket)."""
    async with (
        world(endpoint, Transport="http") as w,
        CassetteRecorder(path, w.orch.settings) as recorder,
    ):
        with contextlib.suppress(OrchestratorError):
            await recorder.generate(PARAMS, images=2)
    return load_cassette(path)


def replay_settings(cassette: Cassette) -> Settings:
    return Settings.from_mapping(
        {**cassette.settings, "runpod_api_key": KEY, "state_file": ":memory:"},
        source="test",
    )


@pytest.mark.parametrize("protocol", ["v1", "v2"])
async def test_a_whole_recorded_generation_replays_through_the_engine_with_no_server(
    tmp_path: Path, protocol: Literal["v1", "v2"]
) -> None:
    cassette = await record_over_http(
        tmp_path / "http.cassette.jsonl", EndpointConfig(cold_start_s=45.0, protocol=protocol)
    )
    (recorded,) = cassette.outcomes
    assert recorded.state == "Done" and recorded.cold_start

    with cassette_mocks(cassette, swarmui=True, recorded_durations=True) as mocks:
        async with Orchestrator(replay_settings(cassette)) as orch:  # the emulator is gone
            result = await orch.generate(PARAMS, images=2)

    assert result.cold_start
    assert [image.seed for image in result.images] == [7, 8]
    assert [hashlib.sha256(image.data).hexdigest() for image in result.images] == [
        image.sha256 for image in recorded.images
    ]
    mocks.assert_all_used()
    assert len(mocks.used) == len(cassette.exchanges)


async def test_the_runpod_timeline_answers_under_the_base_url_the_code_uses() -> None:
    cassette = load_cassette(FIXTURE)
    with cassette_mocks(FIXTURE, runpod_base_url=RUNPOD) as mocks:
        assert mocks.runpod_base_url == RUNPOD
        assert all("/v2/test-ep/" in e.url for e in mocks.exchanges)  # RunPod's only
        async with aiohttp.ClientSession() as session:
            client = RunPodClient(session, "test-ep", Secret("any"), base_url=RUNPOD)
            wakeup = await client.run({"action": "wakeup"})
            states = [(await client.status(wakeup.id)).state]
            while states[-1] is not JobStatus.COMPLETED:
                states.append((await client.status(wakeup.id)).state)
    recorded_polls = [e for e in cassette.exchanges if f"/status/{wakeup.id}" in e.url]
    assert len(states) == len(recorded_polls)
    assert states[0] is JobStatus.IN_QUEUE
    assert mocks.used[0].url.endswith("/run") and len(mocks.used) == 1 + len(states)
    with pytest.raises(AssertionError, match=r"never requested; first: GET /v2/test-ep/health"):
        mocks.assert_all_used()  # the health check, the keepalive and its cancel never asked


async def test_a_request_the_cassette_does_not_hold_is_refused() -> None:
    with cassette_mocks(FIXTURE, runpod_base_url=RUNPOD):
        async with aiohttp.ClientSession() as session:
            client = RunPodClient(session, "test-ep", Secret("any"), base_url=RUNPOD)
            with pytest.raises(TransportError):
                await client.purge_queue()


def failing(seq: int, kind: str, type_: str, route: str = "status/j") -> Exchange:
    return Exchange(
        seq=seq,
        kind="http",
        t=float(seq),
        dt=0.0,
        method="GET",
        url=f"http://127.0.0.1:1/v2/ep/{route}",
        error=ExchangeError(kind, type_),
    )


def handmade(*exchanges: Exchange) -> Cassette:
    return Cassette(
        source="handmade",
        swarmpod_version="0",
        recorded_at="",
        settings={"runpod_base_url": "http://127.0.0.1:1/v2"},
        retry={},
        generations=(),
        exchanges=exchanges,
        outcomes=(),
        duration=10.0,
    )


@pytest.mark.parametrize(
    ("kind", "type_", "raised"),
    [
        ("connect", "ClientConnectorError", aiohttp.ClientConnectorError),
        ("connect", "ConnectionTimeoutError", aiohttp.ConnectionTimeoutError),
        ("disconnect", "ServerDisconnectedError", aiohttp.ServerDisconnectedError),
        ("timeout", "SocketTimeoutError", aiohttp.SocketTimeoutError),
        ("timeout", "TimeoutError", TimeoutError),
    ],
)
async def test_failed_exchanges_fail_again_as_recorded(
    kind: str, type_: str, raised: type[Exception]
) -> None:
    with aioresponses() as mocked:
        add_cassette_mocks(mocked, handmade(failing(0, kind, type_)))
        async with aiohttp.ClientSession() as session:
            with pytest.raises(raised):
                await session.get("http://127.0.0.1:1/v2/ep/status/j?wait=5")


async def test_a_request_the_recording_abandoned_never_answers_until_cancelled_again() -> None:
    ok = Exchange(
        seq=1,
        kind="http",
        t=1.0,
        dt=0.0,
        method="GET",
        url="http://127.0.0.1:1/v2/ep/status/j",
        status=200,
        headers={"Content-Type": "application/json"},
        body=b'{"id": "j", "status": "COMPLETED"}',
    )
    with cassette_mocks(handmade(failing(0, "cancelled", "CancelledError"), ok)) as mocks:
        async with aiohttp.ClientSession() as session:
            with anyio.move_on_after(30) as scope:
                await session.get("http://127.0.0.1:1/v2/ep/status/j")
            assert scope.cancelled_caught
            async with session.get("http://127.0.0.1:1/v2/ep/status/j") as answer:
                assert (await answer.json())["status"] == "COMPLETED"
    mocks.assert_all_used()

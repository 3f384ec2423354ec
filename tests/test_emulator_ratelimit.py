"""Rate limits (runpod-api.md §2 table; §8 item 27): per-route token buckets, 429 + Retry-After."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import anyio
import pytest

from orchestrator.emulator import Emulator, EmulatorConfig, EndpointConfig, RateLimits

pytestmark = pytest.mark.anyio


class Api:
    def __init__(self, session: aiohttp.ClientSession, emulator: Emulator) -> None:
        self.session = session
        self.base = f"{emulator.base_url}/ep"

    async def status(self, method: str, path: str, *, key: str = "test-key") -> tuple[int, str]:
        async with self.session.request(
            method, f"{self.base}/{path}", json={"input": {}}, headers={"Authorization": key}
        ) as response:
            await response.read()
            return response.status, response.headers.get("Retry-After", "")


@asynccontextmanager
async def emulated(config: EndpointConfig) -> AsyncIterator[Api]:
    emulator_config = EmulatorConfig(endpoints={"ep": config}, api_keys=("test-key", "other"))
    async with Emulator(emulator_config) as emulator, aiohttp.ClientSession() as session:
        yield Api(session, emulator)


def test_defaults_are_the_published_limits() -> None:
    limits = RateLimits()
    assert limits.window_s == 10.0
    assert {
        route: limits.limit_for(route)
        for route in ("run", "runsync", "status", "status-sync", "stream", "cancel", "purge-queue")
    } == {
        "run": 1000,
        "runsync": 2000,
        "status": 2000,
        "status-sync": 2000,
        "stream": 2000,
        "cancel": 100,
        "purge-queue": 2,
    }
    assert limits.limit_for("health") is None
    assert limits.limit_for("retry") is None
    assert EndpointConfig().rate_limits == RateLimits()


def test_impossible_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="rate limits"):
        RateLimits(run=0)


async def test_purge_queue_gets_429_with_retry_after_past_2_per_10_s(anyio_backend: object) -> None:
    async with emulated(EndpointConfig()) as api:
        answers = [await api.status("POST", "purge-queue") for _ in range(3)]
        await anyio.sleep(5.0)  # the bucket refills one token per 5 s
        later = await api.status("POST", "purge-queue")
        again = await api.status("POST", "purge-queue")
    assert [status for status, _ in answers] == [200, 200, 429]
    assert answers[2][1] == "5"
    assert later[0] == 200
    assert again == (429, "5")


async def test_a_burst_over_the_run_limit_gets_429(anyio_backend: object) -> None:
    config = EndpointConfig(rate_limits=RateLimits(run=3, window_s=6.0), cold_start_s=9999.0)
    async with emulated(config) as api:
        answers = [(await api.status("POST", "run"))[0] for _ in range(5)]
        await anyio.sleep(2.0)
        refilled = (await api.status("POST", "run"))[0]
    assert answers == [200, 200, 200, 429, 429]
    assert refilled == 200


async def test_status_and_status_sync_share_a_bucket_and_health_is_not_limited(
    anyio_backend: object,
) -> None:
    config = EndpointConfig(rate_limits=RateLimits(status=2, window_s=10.0))
    async with emulated(config) as api:
        first = (await api.status("GET", "status/nope-u1"))[0]
        second = (await api.status("GET", "status-sync/nope-u1"))[0]
        third, retry_after = await api.status("POST", "status/nope-u1")
        health = [(await api.status("GET", "health"))[0] for _ in range(20)]
    assert (first, second) == (404, 404)
    assert third == 429
    assert retry_after == "5"
    assert set(health) == {200}


async def test_buckets_are_per_api_key(anyio_backend: object) -> None:
    config = EndpointConfig(rate_limits=RateLimits(cancel=1))
    async with emulated(config) as api:
        mine = [(await api.status("POST", "cancel/x-u1"))[0] for _ in range(2)]
        theirs = (await api.status("POST", "cancel/x-u1", key="other"))[0]
    assert mine == [404, 429]
    assert theirs == 404


async def test_rate_limits_can_be_switched_off(anyio_backend: object) -> None:
    async with emulated(EndpointConfig(rate_limits=None)) as api:
        answers = {(await api.status("POST", "purge-queue"))[0] for _ in range(10)}
    assert answers == {200}

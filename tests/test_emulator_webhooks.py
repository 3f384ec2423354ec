"""Webhooks (runpod-api.md §2.1, §3; §8 item 17): the status object POSTed on a terminal state."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from aiohttp import web
from support import emulated, run, until

from orchestrator.emulator import (
    EndpointConfig,
    WebhookCall,
)

pytestmark = pytest.mark.anyio


class Receiver:
    """A real HTTP receiver on 127.0.0.1 that answers the scripted statuses, then 200."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.received: list[tuple[float, Any]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((anyio.current_time(), await request.json()))
        status = self.statuses.pop(0) if self.statuses else 200
        return web.json_response({}, status=status)


@asynccontextmanager
async def receiver(statuses: list[int]) -> AsyncIterator[Receiver]:
    hook = Receiver(statuses)
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        hook.url = f"http://{host}:{port}/hook"
        yield hook
    finally:
        await runner.cleanup()


WARM = EndpointConfig(min_workers=1, cold_start_s=1.0)


async def test_a_completed_job_posts_its_status_object_once(anyio_backend: object) -> None:
    async with receiver([]) as hook, emulated(WARM) as (emulator, ep):
        job_id = await run(emulator, {"input": {"action": "health"}, "webhook": hook.url})
        await until(lambda: len(hook.received) == 1)
        await anyio.sleep(60)
        job = ep.jobs[job_id].to_api(anyio.current_time())
    assert len(hook.received) == 1
    assert hook.received[0][1] == job
    assert job["status"] == "COMPLETED"
    assert [(c.job_id, c.attempt, c.status) for c in ep.webhook_calls] == [(job_id, 1, 200)]


async def test_a_failed_job_posts_its_error(anyio_backend: object) -> None:
    async with receiver([]) as hook, emulated(WARM) as (emulator, _):
        await run(emulator, {"input": {"action": "dance"}, "webhook": hook.url})
        await until(lambda: len(hook.received) == 1)
    body = hook.received[0][1]
    assert body["status"] == "FAILED"
    assert body["error"] == "Unknown action: dance"


async def test_not_200_is_retried_twice_more_10_s_apart(anyio_backend: object) -> None:
    async with receiver([500, 500, 500, 500]) as hook, emulated(WARM) as (emulator, ep):
        await run(emulator, {"input": {"action": "health"}, "webhook": hook.url})
        await until(lambda: len(hook.received) == 3)
        await anyio.sleep(60)
    times = [at for at, _ in hook.received]
    assert len(times) == 3  # 1 + 2 retries, then it gives up
    assert [round(b - a, 3) for a, b in itertools.pairwise(times)] == [10.0, 10.0]
    assert [c.status for c in ep.webhook_calls] == [500, 500, 500]


async def test_delivery_stops_at_the_first_200(anyio_backend: object) -> None:
    async with receiver([503]) as hook, emulated(WARM) as (emulator, ep):
        await run(emulator, {"input": {"action": "health"}, "webhook": hook.url})
        await until(lambda: len(hook.received) == 2)
        await anyio.sleep(60)
    assert len(hook.received) == 2
    assert [c.attempt for c in ep.webhook_calls] == [1, 2]


async def test_retry_count_and_delay_are_configurable(anyio_backend: object) -> None:
    config = EndpointConfig(
        min_workers=1, cold_start_s=1.0, webhook_retries=1, webhook_retry_delay_s=2.5
    )
    async with receiver([500] * 5) as hook, emulated(config) as (emulator, _):
        await run(emulator, {"input": {"action": "health"}, "webhook": hook.url})
        await until(lambda: len(hook.received) == 2)
        await anyio.sleep(30)
    times = [at for at, _ in hook.received]
    assert len(times) == 2
    assert times[1] - times[0] == pytest.approx(2.5, abs=0.01)


async def test_an_unreachable_receiver_is_recorded_without_a_status(anyio_backend: object) -> None:
    async with receiver([]) as hook:
        dead_url = hook.url  # closed when the block ends
    async with emulated(WARM) as (emulator, ep):
        await run(emulator, {"input": {"action": "health"}, "webhook": dead_url})
        await until(lambda: len(ep.webhook_calls) == 3)
    assert all(isinstance(c, WebhookCall) and c.status is None for c in ep.webhook_calls)


async def test_no_webhook_no_delivery(anyio_backend: object) -> None:
    async with emulated(WARM) as (emulator, ep):
        job_id = await run(emulator, {"input": {"action": "health"}})
        await until(lambda: ep.jobs[job_id].status == "COMPLETED")
        await anyio.sleep(30)
    assert ep.webhook_calls == []

"""The emulator's billing ledger (specs/runpod-api.md §4.5).

Billing runs from worker start until full stop, rounded up to the whole second, and covers boot,
execution and idle-timeout time; throttled and unhealthy time is not billed.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import anyio
import pytest
from support import emulated, until

from orchestrator.emulator import (
    Emulator,
    EndpointConfig,
    LedgerEntry,
)

pytestmark = pytest.mark.anyio


async def call(emulator: Emulator, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method,
            f"{emulator.base_url}/ep/{path}",
            json=body,
            headers={"Authorization": "Bearer test-key"},
        ) as response,
    ):
        return response.status, await response.json()


async def test_cold_start_job_and_idle_timeout_are_billed_rounded_up(
    anyio_backend: object,
) -> None:
    config = EndpointConfig(cold_start_s=30.5, queue_delay_s=4.0, idle_timeout_s=5.0)
    async with emulated(config) as (emulator, ep):
        _, job = await call(
            emulator, "POST", "run", {"input": {"action": "keepalive", "duration": 20}}
        )
        await until(lambda: bool(ep.workers) and not ep.workers[0].live)
        [entry] = ep.ledger
    worker = ep.workers[0]
    assert ep.jobs[job["id"]].status == "COMPLETED"
    assert entry.worker_id == worker.id
    assert entry.started_at == pytest.approx(4.0, abs=0.05)  # started by the queue delay
    assert entry.stopped_at == pytest.approx(entry.started_at + 55.5, abs=0.05)
    assert entry.boot_s == pytest.approx(30.5, abs=0.01)
    assert entry.execution_s == pytest.approx(20.0, abs=0.05)
    assert entry.idle_s == pytest.approx(5.0, abs=0.05)
    assert entry.billed_seconds == 56  # 55.5 s rounded up
    assert not entry.open
    assert entry.flashboot is False


async def test_whole_seconds_are_not_rounded_up_again(anyio_backend: object) -> None:
    config = EndpointConfig(min_workers=0, cold_start_s=10.0, queue_delay_s=0.0, idle_timeout_s=5.0)
    async with emulated(config) as (emulator, ep):
        await call(emulator, "POST", "run", {"input": {"action": "health"}})
        await until(lambda: bool(ep.workers) and not ep.workers[0].live)
        [entry] = ep.ledger
    assert entry.billed_seconds == 15


async def test_a_live_workers_entry_is_open_and_keeps_counting(anyio_backend: object) -> None:
    async with emulated(EndpointConfig(min_workers=1, cold_start_s=10.0)) as (_, ep):
        await anyio.sleep(25.2)
        [first] = ep.ledger
        await anyio.sleep(10)
        [later] = ep.ledger
        payload = ep.ledger_json()
    assert first.open
    assert first.stopped_at is None
    assert first.boot_s == pytest.approx(10.0, abs=0.01)
    assert first.idle_s == pytest.approx(15.2, abs=0.05)
    assert first.billed_seconds == 26
    assert later.billed_seconds == 36
    assert payload["open_workers"] == 1
    assert payload["entries"][0]["open"] is True


async def test_ledger_json_has_totals_and_is_served_on_the_debug_route(
    anyio_backend: object,
) -> None:
    config = EndpointConfig(max_workers=2, cold_start_s=10.0, queue_delay_s=0.0, idle_timeout_s=2.0)
    async with emulated(config) as (emulator, ep):
        for _ in range(2):
            await call(emulator, "POST", "run", {"input": {"action": "keepalive", "duration": 3}})
        await until(lambda: len(ep.workers) == 2 and not ep.running_workers())
        status, served = await call(emulator, "GET", "_emulator/ledger")
        local = ep.ledger_json()
    assert status == 200
    assert served == json.loads(json.dumps(local))  # JSON-serializable, same over HTTP
    assert served["endpoint_id"] == "ep"
    assert served["workers"] == 2
    assert served["total_billed_seconds"] == sum(e["billed_seconds"] for e in served["entries"])
    assert served["total_billed_seconds"] == 30  # 2 x (10 boot + 3 job + 2 idle)
    assert served["total_boot_s"] == pytest.approx(20.0, abs=0.01)
    assert ("GET", "_emulator/ledger", 200) not in ep.api_calls  # not a RunPod call


async def test_the_debug_route_needs_a_key_and_a_known_endpoint(anyio_backend: object) -> None:
    async with Emulator() as emulator, aiohttp.ClientSession() as session:
        url = f"{emulator.base_url}/local-ep/_emulator/ledger"
        async with session.get(url) as no_key:
            assert no_key.status == 401
        async with session.get(
            f"{emulator.base_url}/nope/_emulator/ledger", headers={"Authorization": "test-key"}
        ) as unknown:
            assert unknown.status == 404


async def test_a_flashboot_revival_is_flagged_and_billed_its_shorter_boot(
    anyio_backend: object,
) -> None:
    config = EndpointConfig(
        cold_start_s=60.0, flashboot_start_s=5.0, queue_delay_s=0.0, idle_timeout_s=5.0
    )
    async with emulated(config) as (emulator, ep):
        await call(emulator, "POST", "run", {"input": {}})
        await until(lambda: len(ep.workers) == 1 and not ep.workers[0].live)
        await call(emulator, "POST", "run", {"input": {}})
        await until(lambda: len(ep.workers) == 2 and not ep.workers[1].live)
        cold, warm = ep.ledger
    assert (cold.flashboot, warm.flashboot) == (False, True)
    assert (cold.billed_seconds, warm.billed_seconds) == (65, 10)


async def test_unhealthy_time_is_not_billed(anyio_backend: object) -> None:
    config = EndpointConfig(boot_fails=True, max_workers=1, cold_start_s=30.0, queue_delay_s=0.0)
    async with emulated(config) as (emulator, ep):
        await call(emulator, "POST", "run", {"input": {}})
        await anyio.sleep(600)
        [entry] = ep.ledger
    assert entry.open  # unhealthy workers keep their slot
    assert entry.billed_seconds == 30  # the failed boot only
    assert entry.idle_s == 0.0


def test_an_entry_is_a_value_with_a_json_form() -> None:
    entry = LedgerEntry("w1", 1.0, None, 3, True, 1.5, 0.0, 0.7)
    assert entry.open
    assert entry.to_json() == {
        "worker_id": "w1",
        "started_at": 1.0,
        "stopped_at": None,
        "open": True,
        "billed_seconds": 3,
        "flashboot": True,
        "boot_s": 1.5,
        "execution_s": 0.0,
        "idle_s": 0.7,
    }

"""The warm pool replicas share through PostgreSQL: its table's statements, its announcements,
and replicas (orchestrators, each on its own connection to one database) using it.

A real PostgreSQL (one fresh database per test) and the emulator, on the real clock: cold
starts of a second, generations of tens of milliseconds.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import pytest
from cryptography.fernet import Fernet
from pg_support import StoreSpot

from orchestrator import Orchestrator, Settings
from orchestrator.emulator import EmulatedEndpoint, Emulator, EmulatorConfig, EndpointConfig
from orchestrator.emulator.swarm import SwarmConfig
from orchestrator.store import POOL, PostgresStore, StateStore, migrate
from orchestrator.workers._cluster_bus import PoolBus, PoolNews
from orchestrator.workers._cluster_table import PoolTable

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.parametrize("store_kind", ["postgresql"], indirect=True),
]

KEY = "shared-pool-key-0123456789"
PARAMS = {"prompt": "a fox", "width": 64, "height": 64, "steps": 2}


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    """The real clock: PostgreSQL answers in real time."""
    return ("asyncio", {"loop_factory": asyncio.new_event_loop})


def table_of(store: StateStore) -> PoolTable:
    return PoolTable(store, endpoint_id="ep", key_fingerprint="fp", replica_id=store.replica_id)


async def warm_worker(table: PoolTable, *, capacity: int) -> int:
    (row,) = await table.request(
        1, demand_fallback=0, max_workers=10, capacity=capacity, protocol="v2"
    )
    await table.mark_warm(
        row.id,
        capacity=capacity,
        worker_id="w1",
        job_id="job-1",
        public_url="http://w",
        sealed=b"x",
    )
    return row.id


async def test_a_seat_is_one_atomic_statement_never_past_capacity_whichever_replica_takes(
    spot: StoreSpot,
) -> None:
    async with spot.open() as a, spot.open() as b:
        await migrate(a, POOL)
        first, second = table_of(a), table_of(b)
        worker = await warm_worker(first, capacity=2)
        taken: list[Any] = []

        async def take(table: PoolTable) -> None:
            taken.append(await table.take())

        async with anyio.create_task_group() as tasks:
            for table in (first, second) * 5:
                tasks.start_soon(take, table)
        seats = [seat for seat in taken if seat is not None]
        assert len(seats) == 2 and {seat.row.id for seat in seats} == {worker}
        row = await first.row(worker)
        assert row is not None and (row.busy, row.state) == (2, "busy")
        for seat in seats:
            await second.give_back(seat.seat_id)
        row = await first.row(worker)
        assert row is not None and (row.busy, row.state) == (0, "idle")


async def test_workers_are_requested_under_the_endpoints_max_workers_for_every_replica(
    spot: StoreSpot,
) -> None:
    async with spot.open() as a, spot.open() as b, spot.open() as c:
        await migrate(a, POOL)
        made: list[int] = []

        async def ask(store: StateStore) -> None:
            table = table_of(store)
            await table.set_demand(5)
            rows = await table.request(
                0, demand_fallback=5, max_workers=4, capacity=1, protocol="v2"
            )
            made.append(len(rows))

        async with anyio.create_task_group() as tasks:
            for store in (a, b, c):
                tasks.start_soon(ask, store)
        assert sum(made) == 4
        assert len(await table_of(a).rows()) == 4


async def test_no_worker_is_asked_for_when_the_seats_serve_every_replicas_line_sooner(
    spot: StoreSpot,
) -> None:
    async with spot.open() as a, spot.open() as b:
        await migrate(a, POOL)
        owner, other = table_of(a), table_of(b)
        await warm_worker(owner, capacity=1)
        assert await other.take() is not None  # its 1 s generation has just begun
        await other.set_demand(3)

        async def ask(ready_in_s: float) -> int:
            rows = await owner.request(
                0,
                demand_fallback=0,
                max_workers=4,
                capacity=1,
                protocol="v2",
                ready_in_s=ready_in_s,
                generation_s=1.0,
            )
            return len(rows)

        assert await ask(60.0) == 0  # the busy seat serves the three long before a new worker
        assert await ask(2.0) == 1  # one ready in 2 s starts the third sooner than the seat


async def test_an_owner_releases_only_a_worker_no_replica_has_a_seat_on_and_then_none_can(
    spot: StoreSpot,
) -> None:
    async with spot.open() as owner_store, spot.open() as other_store:
        await migrate(owner_store, POOL)
        owner, other = table_of(owner_store), table_of(other_store)
        worker = await warm_worker(owner, capacity=1)
        seat = await other.take()
        assert seat is not None
        assert not await owner.claim_release(worker, retiring=False)  # a seat is taken
        await other.give_back(seat.seat_id)
        assert not await other.claim_release(worker, retiring=False)  # not its worker
        assert await owner.claim_release(worker, retiring=False)
        assert await other.take() is None  # draining: no seat any more


async def test_every_change_is_announced_to_every_replica(spot: StoreSpot) -> None:
    async with spot.open() as writer_store, spot.open() as listener_store:
        await migrate(writer_store, POOL)
        assert isinstance(listener_store, PostgresStore)
        heard: list[PoolNews] = []
        changed = anyio.Event()

        class Listener:
            def heard(self, news: PoolNews) -> None:
                heard.append(news)
                changed.set()

            def resync(self) -> None:
                return None

        bus = PoolBus(listener_store)
        bus.subscribe("ep|fp", Listener())
        async with anyio.create_task_group() as tasks:
            await tasks.start(bus.run)
            worker = await warm_worker(table_of(writer_store), capacity=1)
            with anyio.fail_after(5):
                while not any(n.state == "idle" for n in heard):
                    await changed.wait()
                    changed = anyio.Event()
            tasks.cancel_scope.cancel()
        assert [n.worker for n in heard] == [worker, worker]
        assert [n.state for n in heard] == ["requested", "idle"]
        assert all("x" not in json.dumps(n.__slots__) for n in heard)  # no token in the news


@asynccontextmanager
async def replicas(
    spot: StoreSpot, count: int, **settings: Any
) -> AsyncIterator[tuple[Emulator, list[Orchestrator]]]:
    """``count`` orchestrators on the spot's database (each its own replica), one emulator."""
    endpoint = EndpointConfig(
        protocol="v2",
        cold_start_s=1.0,
        queue_delay_s=0.0,
        idle_timeout_s=1.0,
        max_workers=8,
        swarm=SwarmConfig(seconds_per_step=0.01),
    )
    config = EmulatorConfig(endpoints={"ep": endpoint}, api_keys=(KEY,))
    assert spot.url is not None
    values = {
        "EndpointId": "ep",
        "RunPodApiKey": KEY,
        "WorkerProtocol": "v2",
        "MaxWorkers": 2,
        "IdleTimeoutSec": 2,
        "PollIntervalMs": 100,
        "DatabaseUrl": spot.url.reveal(),
        "ReplicaHeartbeatSec": 1,
        **settings,
    }
    async with Emulator(config) as emulator, AsyncExitStack() as stack:
        values["RunPodBaseUrl"] = emulator.base_url
        orchestrators = [
            await stack.enter_async_context(Orchestrator(Settings.from_mapping(values)))
            for _ in range(count)
        ]
        yield emulator, orchestrators


def counted_cancels(endpoint: EmulatedEndpoint) -> list[str]:
    """The ids of the jobs ``/cancel`` reaches at the emulator, in order (one per call)."""
    cancels: list[str] = []
    cancel = endpoint.cancel

    def counted(job: Any) -> None:
        cancels.append(job.id)
        cancel(job)

    endpoint.cancel = counted  # type: ignore[method-assign]
    return cancels


@pytest.fixture(autouse=True)
def _master_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARMPOD_MASTER_KEY", Fernet.generate_key().decode())


async def test_a_generation_at_one_replica_runs_on_the_warm_worker_another_leased(
    spot: StoreSpot,
) -> None:
    async with replicas(spot, 2) as (emulator, (a, b)):
        first = await a.generate(PARAMS)
        second = await b.generate(PARAMS)
        assert first.cold_start and not second.cold_start
        assert second.worker_id == first.worker_id
        leases = [j for j in emulator.endpoint("ep").jobs.values() if j.input["action"] == "lease"]
        assert len(leases) == 1
        assert b.status().warm == 1  # b sees a's worker


async def test_a_burst_over_two_replicas_never_holds_more_than_max_workers(
    spot: StoreSpot,
) -> None:
    async with replicas(spot, 2) as (emulator, orchestrators):
        done: list[str] = []

        async def generate(index: int) -> None:
            result = await orchestrators[index % 2].generate(PARAMS)
            done.append(str(result.worker_id))

        async with anyio.create_task_group() as tasks:
            for index in range(12):
                tasks.start_soon(generate, index)
        endpoint = emulator.endpoint("ep")
        assert len(done) == 12 and len(set(done)) <= 2 and len(endpoint.workers) <= 2


async def test_a_replica_declared_dead_hands_over_and_another_adopts_and_releases_once(
    spot: StoreSpot,
) -> None:
    async with replicas(spot, 2) as (emulator, (a, b)):
        result = await a.generate(PARAMS)
        store = a._store or a._journal.store  # type: ignore[union-attr]
        assert isinstance(store, PostgresStore)
        endpoint = emulator.endpoint("ep")
        cancels = counted_cancels(endpoint)
        await b._journal.store.execute(  # type: ignore[union-attr]
            "UPDATE replicas SET heartbeat_at = now() - interval '1 minute' WHERE id = ?",
            (store.replica_id,),
        )
        with anyio.fail_after(10):
            await store.evicted.wait()  # its next heartbeat found it declared dead
            while b.status().warm != 1 or a.status().warm != 1:  # noqa: ASYNC110
                await anyio.sleep(0.05)
        again = await b.generate(PARAMS)
        assert again.worker_id == result.worker_id and not again.cold_start
        with anyio.fail_after(10):
            while endpoint.running_workers():  # noqa: ASYNC110 - b releases it after 2 s
                await anyio.sleep(0.1)
        (lease,) = [j for j in endpoint.jobs.values() if j.input["action"] == "lease"]
        assert cancels == [lease.id]  # released once, by its adopter
        entries = await b._journal.open_entries()  # type: ignore[union-attr]
        assert entries == []


async def test_a_replica_stopping_hands_over_the_worker_another_replica_generates_on(
    spot: StoreSpot,
) -> None:
    slow = {"prompt": "a fox", "width": 64, "height": 64, "steps": 300}  # 3 s on the worker
    async with replicas(spot, 1, MaxWorkers=1) as (emulator, (b,)):
        endpoint = emulator.endpoint("ep")
        cancels = counted_cancels(endpoint)
        a_owns_it, stop_a, a_stopped = anyio.Event(), anyio.Event(), anyio.Event()
        results: list[Any] = []

        async def replica_a() -> None:
            async with Orchestrator(b.settings) as a:
                await a.generate(PARAMS)  # a owns the one worker
                a_owns_it.set()
                await stop_a.wait()
            a_stopped.set()

        async def generate_at_b() -> None:
            results.append(await b.generate(slow))

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(replica_a)
            await a_owns_it.wait()
            tasks.start_soon(generate_at_b)
            with anyio.fail_after(10):
                while b.status().busy != 1:  # noqa: ASYNC110 - b generates on a's worker
                    await anyio.sleep(0.05)
            stop_a.set()  # a stops while b generates on its worker
            await a_stopped.wait()
            assert cancels == []  # handed over, not released under b
        (result,) = results
        assert result.images and not result.cold_start
        with anyio.fail_after(15):
            while endpoint.running_workers():  # noqa: ASYNC110 - b adopted it, then let it go
                await anyio.sleep(0.1)
        (lease,) = [j for j in endpoint.jobs.values() if j.input["action"] == "lease"]
        assert cancels == [lease.id]

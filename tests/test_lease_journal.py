"""The lease journal: kept in the state store (a real SQLite file, or a real PostgreSQL shared by
replicas) that outlives the process and drives crash recovery."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import aiohttp
import anyio
import anyio.lowlevel
import pytest
from pg_support import StoreSpot, sqlite_only
from support import emulated, until

from orchestrator.emulator import EndpointConfig, WorkerState
from orchestrator.errors import RunPodServerError
from orchestrator.runpod import JobStatus, RunPodClient
from orchestrator.secrets import Secret
from orchestrator.workers import JournalEntry, LeaseJournal, V2Protocol, recover_leases

pytestmark = pytest.mark.anyio

KEY = Secret("test-key")


async def test_an_entry_is_open_from_before_the_request_until_closed(spot: StoreSpot) -> None:
    async with spot.open() as store:
        journal = await LeaseJournal.open(store)
        entry = await journal.begin("ep", "v2", KEY)
        assert [e.job_id for e in await journal.open_entries()] == [None]
        await journal.attach(entry, "job-1")
        await journal.close(entry, "released")
        assert await journal.open_entries() == []
        closed = await journal.entry(entry)
        assert (closed.outcome, closed.job_id) == ("released", "job-1")
        assert closed.closed_at is not None and closed.opened_at.endswith("Z")


async def test_open_entries_survive_the_process(spot: StoreSpot) -> None:
    async with spot.open() as store:
        first = await LeaseJournal.open(store)
        await first.attach(await first.begin("ep", "v2", KEY), "job-1")
        await first.begin("other", "v1", KEY)
    async with spot.open() as store:  # the next start
        again = await LeaseJournal.open(store)
        assert [(e.endpoint_id, e.job_id) for e in await again.open_entries()] == [
            ("ep", "job-1"),
            ("other", None),
        ]
        assert [e.endpoint_id for e in await again.open_entries("other")] == ["other"]


@sqlite_only
async def test_the_file_is_private_and_never_holds_the_key(spot: StoreSpot) -> None:
    key = Secret("rpa_PLANTED_SECRET_0123456789")
    journal = await LeaseJournal.open(spot.path)
    await journal.attach(await journal.begin("ep", "v2", key), "job-1")
    await journal.close_file()
    assert stat.S_IMODE(os.stat(spot.path).st_mode) == 0o600
    raw = b"".join(p.read_bytes() for p in spot.path.parent.iterdir())
    assert b"rpa_PLANTED_SECRET" not in raw
    assert key.fingerprint.encode() in raw


async def test_a_restart_cancels_the_lease_a_crashed_process_left_running(tmp_path: Path) -> None:
    path = tmp_path / "swarmpod.sqlite3"
    async with emulated(EndpointConfig(protocol="v2", cold_start_s=10)) as (emulator, endpoint):
        async with aiohttp.ClientSession() as session:
            client = RunPodClient(session, "ep", KEY, base_url=emulator.base_url)
            crashed = await LeaseJournal.open(path)
            entry = await crashed.begin("ep", "v2", KEY)
            v2 = V2Protocol(client, poll_interval=1.0)
            job = await v2.request_lease()
            await crashed.attach(entry, job.id)
            await v2.wait_for_lease(job)
            await crashed.close_file()  # the process dies holding a warm worker

            cancelled: list[str] = []

            async def cancel(found: JournalEntry, key: Secret) -> None:
                assert key is KEY
                assert found.job_id is not None
                cancelled.append(found.job_id)
                await client.cancel(found.job_id)

            restarted = await LeaseJournal.open(path)
            report = await recover_leases(restarted, [Secret("other-key"), KEY], cancel)
        assert cancelled == [job.id]
        assert [(r.cancelled, r.reason) for r in report] == [(True, "cancelled")]
        assert await restarted.open_entries() == []
        assert (await restarted.entry(entry)).outcome == "recovered"
        assert endpoint.jobs[job.id].state is JobStatus.CANCELLED
        await until(lambda: endpoint.workers[0].state is WorkerState.STOPPED)


async def test_recovery_reports_what_it_cannot_cancel(spot: StoreSpot) -> None:
    async with spot.open() as store:  # a process (or replica) that stopped holding leases
        crashed = await LeaseJournal.open(store)
        no_job = await crashed.begin("ep", "v2", KEY)
        other_key = await crashed.begin("ep", "v2", Secret("a-key-not-configured"))
        await crashed.attach(other_key, "job-2")
        failing = await crashed.begin("ep", "v2", KEY)
        await crashed.attach(failing, "job-3")

    async def cancel(entry: JournalEntry, key: Secret) -> None:
        raise RunPodServerError("RunPod is down", route="cancel", status=503)

    async with spot.open() as store:
        journal = await LeaseJournal.open(store)
        report = await recover_leases(journal, [KEY], cancel)
        reasons = {r.entry.id: r.reason for r in report}
        assert not any(r.cancelled for r in report)
        assert "no job id" in reasons[no_job]
        assert "not configured" in reasons[other_key]
        assert "cancel failed" in reasons[failing]
        assert (await journal.entry(no_job)).outcome == "abandoned"
        still_open = await journal.open_entries()
        assert [e.id for e in still_open] == [other_key, failing]  # tried again next start
        assert {e.owner for e in still_open} == {crashed.owner}  # still the dead one's


async def test_the_leases_of_a_live_replica_are_left_alone(spot: StoreSpot) -> None:
    async with spot.open() as live_store, spot.open() as starting_store:
        live = await LeaseJournal.open(live_store)
        await live.attach(await live.begin("ep", "v2", KEY), "job-live")
        starting = await LeaseJournal.open(starting_store)

        async def cancel(entry: JournalEntry, key: Secret) -> None:
            raise AssertionError(f"cancelled the live lease {entry.job_id}")

        assert await recover_leases(starting, [KEY], cancel) == []
        assert [e.job_id for e in await starting.open_entries()] == ["job-live"]


async def test_replicas_recovering_at_once_cancel_each_orphan_once(spot: StoreSpot) -> None:
    async with spot.open() as store:
        crashed = await LeaseJournal.open(store)
        for number in range(6):
            await crashed.attach(await crashed.begin("ep", "v2", KEY), f"job-{number}")
    cancelled: list[str] = []

    async def cancel(entry: JournalEntry, key: Secret) -> None:
        assert entry.job_id is not None
        cancelled.append(entry.job_id)
        await anyio.lowlevel.checkpoint()  # the other replica runs meanwhile

    async with spot.open() as first_store, spot.open() as second_store:
        first = await LeaseJournal.open(first_store)
        second = await LeaseJournal.open(second_store)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(recover_leases, first, [KEY], cancel)
            tasks.start_soon(recover_leases, second, [KEY], cancel)
        assert sorted(cancelled) == [f"job-{number}" for number in range(6)]  # each once
        assert await first.open_entries() == []


@pytest.mark.parametrize("store_kind", ["postgresql"], indirect=True)
async def test_a_replica_whose_heartbeat_stopped_is_dead_and_its_leases_recovered(
    spot: StoreSpot,
) -> None:
    async with spot.open(heartbeat_s=60) as silent_store, spot.open() as other_store:
        silent = await LeaseJournal.open(silent_store)
        await silent.attach(await silent.begin("ep", "v2", KEY), "job-1")
        other = await LeaseJournal.open(other_store)
        cancelled: list[str | None] = []

        async def cancel(entry: JournalEntry, key: Secret) -> None:
            cancelled.append(entry.job_id)

        assert await recover_leases(other, [KEY], cancel) == []  # fresh: alive
        await other_store.execute(  # its last heartbeat, 2 intervals and a second ago
            "UPDATE replicas SET heartbeat_at = now() - interval '121 seconds' WHERE id = ?",
            (silent_store.replica_id,),
        )
        assert [r.cancelled for r in await recover_leases(other, [KEY], cancel)] == [True]
        assert cancelled == ["job-1"] and await other.open_entries() == []

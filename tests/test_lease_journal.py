"""The lease journal: a real SQLite file that outlives the process and drives crash recovery."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import aiohttp
import pytest
from support import emulated, until

from orchestrator.emulator import EndpointConfig, WorkerState
from orchestrator.errors import RunPodServerError
from orchestrator.runpod import JobStatus, RunPodClient
from orchestrator.secrets import Secret
from orchestrator.workers import JournalEntry, LeaseJournal, V2Protocol, recover_leases

KEY = Secret("test-key")


def test_an_entry_is_open_from_before_the_request_until_closed(tmp_path: Path) -> None:
    journal = LeaseJournal(tmp_path / "swarmpod.sqlite3")
    entry = journal.begin("ep", "v2", KEY)
    assert [e.job_id for e in journal.open_entries()] == [None]
    journal.attach(entry, "job-1")
    journal.close(entry, "released")
    assert journal.open_entries() == []
    closed = journal.entry(entry)
    assert (closed.outcome, closed.job_id) == ("released", "job-1")
    assert closed.closed_at is not None


def test_open_entries_survive_the_process(tmp_path: Path) -> None:
    path = tmp_path / "swarmpod.sqlite3"
    first = LeaseJournal(path)
    first.attach(first.begin("ep", "v2", KEY), "job-1")
    first.begin("other", "v1", KEY)
    del first  # no close: the process "died"
    again = LeaseJournal(path)
    assert [(e.endpoint_id, e.job_id) for e in again.open_entries()] == [
        ("ep", "job-1"),
        ("other", None),
    ]
    assert [e.endpoint_id for e in again.open_entries("other")] == ["other"]


def test_the_file_is_private_and_never_holds_the_key(tmp_path: Path) -> None:
    path = tmp_path / "swarmpod.sqlite3"
    key = Secret("rpa_PLANTED_SECRET_0123456789")
    journal = LeaseJournal(path)
    journal.attach(journal.begin("ep", "v2", key), "job-1")
    journal.close_file()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"rpa_PLANTED_SECRET" not in raw
    assert key.fingerprint.encode() in raw


@pytest.mark.anyio
async def test_a_restart_cancels_the_lease_a_crashed_process_left_running(tmp_path: Path) -> None:
    path = tmp_path / "swarmpod.sqlite3"
    async with emulated(EndpointConfig(protocol="v2", cold_start_s=10)) as (emulator, endpoint):
        async with aiohttp.ClientSession() as session:
            client = RunPodClient(session, "ep", KEY, base_url=emulator.base_url)
            crashed = LeaseJournal(path)
            entry = crashed.begin("ep", "v2", KEY)
            v2 = V2Protocol(client, poll_interval=1.0)
            job = await v2.request_lease()
            crashed.attach(entry, job.id)
            await v2.wait_for_lease(job)
            crashed.close_file()  # the process dies holding a warm worker

            cancelled: list[str] = []

            async def cancel(found: JournalEntry, key: Secret) -> None:
                assert key is KEY
                assert found.job_id is not None
                cancelled.append(found.job_id)
                await client.cancel(found.job_id)

            restarted = LeaseJournal(path)
            report = await recover_leases(restarted, [Secret("other-key"), KEY], cancel)
        assert cancelled == [job.id]
        assert [(r.cancelled, r.reason) for r in report] == [(True, "cancelled")]
        assert restarted.open_entries() == []
        assert restarted.entry(entry).outcome == "recovered"
        assert endpoint.jobs[job.id].state is JobStatus.CANCELLED
        await until(lambda: endpoint.workers[0].state is WorkerState.STOPPED)


@pytest.mark.anyio
async def test_recovery_reports_what_it_cannot_cancel(tmp_path: Path) -> None:
    crashed = LeaseJournal(tmp_path / "swarmpod.sqlite3")
    no_job = crashed.begin("ep", "v2", KEY)
    other_key = crashed.begin("ep", "v2", Secret("a-key-not-configured"))
    crashed.attach(other_key, "job-2")
    failing = crashed.begin("ep", "v2", KEY)
    crashed.attach(failing, "job-3")
    crashed.close_file()
    journal = LeaseJournal(tmp_path / "swarmpod.sqlite3")

    async def cancel(entry: JournalEntry, key: Secret) -> None:
        raise RunPodServerError("RunPod is down", route="cancel", status=503)

    report = await recover_leases(journal, [KEY], cancel)
    reasons = {r.entry.id: r.reason for r in report}
    assert not any(r.cancelled for r in report)
    assert "no job id" in reasons[no_job]
    assert "not configured" in reasons[other_key]
    assert "cancel failed" in reasons[failing]
    assert journal.entry(no_job).outcome == "abandoned"
    assert [e.id for e in journal.open_entries()] == [other_key, failing]  # tried again next start

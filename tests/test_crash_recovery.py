"""Crash-safe release: a lease a dead process left open is cancelled by the next start.

These run in virtual time with journal entries written as a crashed process leaves them;
``test_crash_recovery_process.py`` kills a real process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from support import ENDPOINT, KEY, idled_out, settings_for

from orchestrator import Orchestrator, Secret, Settings
from orchestrator.emulator import EmulatedEndpoint, Emulator, EmulatorConfig, EndpointConfig
from orchestrator.runpod import RunPodClient
from orchestrator.workers import LeaseJournal

pytestmark = pytest.mark.anyio

V2 = EndpointConfig(protocol="v2", cold_start_s=10.0, idle_timeout_s=5.0)


def v2_settings(emulator: Emulator, state: Path, **more: Any) -> Settings:
    return settings_for(
        emulator, **{"WorkerProtocol": "v2", "StateFile": str(state), "PollIntervalMs": 500, **more}
    )


def lease_jobs(endpoint: EmulatedEndpoint) -> list[Any]:
    return [job for job in endpoint.jobs.values() if job.input.get("action") == "lease"]


async def orphan_a_lease(emulator: Emulator, journal: LeaseJournal, key: str = KEY) -> str:
    """Open a lease the way a process does just before it dies: journalled, then requested."""
    entry = await journal.begin(ENDPOINT, "v2", Secret(key))
    async with aiohttp.ClientSession() as session:
        client = RunPodClient(session, ENDPOINT, Secret(key), base_url=emulator.base_url)
        job = await client.run({"action": "lease", "idle_seconds": 3000})
    await journal.attach(entry, job.id)
    return job.id


async def test_a_start_cancels_the_lease_a_crashed_process_left_open(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite3"
    config = EmulatorConfig(endpoints={ENDPOINT: V2}, api_keys=(KEY,))
    async with Emulator(config) as emulator:
        endpoint = emulator.endpoint(ENDPOINT)
        journal = await LeaseJournal.open(state)
        job_id = await orphan_a_lease(emulator, journal)
        await journal.close_file()
        await anyio.sleep(20)
        assert endpoint.jobs[job_id].status == "IN_PROGRESS"  # the worker bills, unattended

        async with Orchestrator(v2_settings(emulator, state)) as orch:
            (recovery,) = orch.recovered
            assert recovery.cancelled and recovery.entry.job_id == job_id
            assert endpoint.jobs[job_id].status == "CANCELLED"
            await anyio.sleep(1)
            assert await idled_out(endpoint) == []
            assert all(not entry.open for entry in endpoint.ledger)
        assert await (await LeaseJournal.open(state)).open_entries() == []


async def test_a_lease_opened_with_another_key_is_left_for_a_start_that_has_it(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state.sqlite3"
    other = "other-key-0123456789"
    config = EmulatorConfig(endpoints={ENDPOINT: V2}, api_keys=(KEY, other))
    async with Emulator(config) as emulator:
        journal = await LeaseJournal.open(state)
        job_id = await orphan_a_lease(emulator, journal, key=other)
        await journal.close_file()
        await anyio.sleep(20)
        async with Orchestrator(v2_settings(emulator, state)) as orch:
            (recovery,) = orch.recovered
            assert not recovery.cancelled and "not configured" in recovery.reason
            assert other not in recovery.reason
            assert emulator.endpoint(ENDPOINT).jobs[job_id].status == "IN_PROGRESS"
            await orch.recover([Secret(other)])  # e.g. the service, with its users' keys
            assert emulator.endpoint(ENDPOINT).jobs[job_id].status == "CANCELLED"


async def test_the_state_file_never_holds_the_key(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite3"
    config = EmulatorConfig(endpoints={ENDPOINT: V2}, api_keys=(KEY,))
    async with Emulator(config) as emulator, Orchestrator(v2_settings(emulator, state)) as orch:
        await orch.generate({"prompt": "x", "width": 64, "height": 64, "steps": 2})
    assert_no_key_in(tmp_path, state)


def assert_no_key_in(directory: Path, state: Path) -> None:
    for path in directory.iterdir():
        assert KEY.encode() not in path.read_bytes()
    assert oct(state.stat().st_mode & 0o777) == "0o600"


async def test_leases_of_another_live_orchestrator_on_the_same_file_are_left_alone(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state.sqlite3"
    config = EmulatorConfig(endpoints={ENDPOINT: V2}, api_keys=(KEY,))
    async with (
        Emulator(config) as emulator,
        Orchestrator(v2_settings(emulator, state, IdleTimeoutSec=600)) as first,
    ):
        await first.generate({"prompt": "x", "width": 64, "height": 64, "steps": 2})
        async with Orchestrator(v2_settings(emulator, state)) as second:
            assert second.recovered == []
        assert first.status().warm == 1


async def test_a_v1_keepalive_is_journalled_and_recovered_after_a_crash(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite3"
    v1 = EndpointConfig(cold_start_s=10.0, idle_timeout_s=5.0)
    config = EmulatorConfig(endpoints={ENDPOINT: v1}, api_keys=(KEY,))
    async with Emulator(config) as emulator:
        endpoint = emulator.endpoint(ENDPOINT)
        settings = v2_settings(emulator, state, WorkerProtocol="v1", IdleTimeoutSec=600)
        async with Orchestrator(settings) as crashed:
            await crashed.generate({"prompt": "x", "width": 64, "height": 64, "steps": 2})
            journal = crashed._journal
            assert journal is not None
            (entry,) = await journal.open_entries()
            keepalive = endpoint.jobs[entry.job_id or ""]
            assert keepalive.input["action"] == "keepalive"
            assert keepalive.status == "IN_PROGRESS"

            async def dies() -> None:  # the process is gone: nothing is released or closed
                await journal.store.close()
                endpoint.faults.http_status("cancel", 500, times=20)  # its cancels never land

            crashed.drain = dies  # type: ignore[method-assign]
        assert keepalive.status == "IN_PROGRESS"
        endpoint.faults.clear()  # RunPod answers the next process
        async with Orchestrator(settings) as orch:
            assert [r.entry.job_id for r in orch.recovered if r.cancelled] == [keepalive.id]
            assert keepalive.status == "CANCELLED"

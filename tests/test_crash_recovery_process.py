"""Crash-safe release with a real process: SIGKILL mid-generation, restart, lease cancelled.

Real time (a subprocess cannot share the virtual clock), with an emulated cold start of a
fraction of a second and a 20 s generation that the kill interrupts.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from support import ENDPOINT, KEY, settings_for

from orchestrator import Orchestrator
from orchestrator.emulator import Emulator, EmulatorConfig, EndpointConfig
from orchestrator.emulator.swarm import SwarmConfig
from orchestrator.workers import LeaseJournal

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    """Real time for the module's subprocess test (asyncio's own loop, closed after)."""
    return ("asyncio", {"loop_factory": asyncio.new_event_loop})


SLOW = SwarmConfig(seconds_per_step=5.0)  # the generation runs for 20 s: killed inside it
# A cancelled lease frees its worker, which then idles out after the endpoint's idle timeout.
ENDPOINT_CONFIG = EndpointConfig(
    protocol="v2", cold_start_s=0.3, idle_timeout_s=1.0, queue_delay_s=0.0, swarm=SLOW
)


async def generate_then_signal(
    emulator: Emulator, state: Path, out: Path, signum: signal.Signals
) -> int:
    """Run ``swarmpod generate`` against ``emulator``; send ``signum`` mid-generation."""
    endpoint = emulator.endpoint(ENDPOINT)
    env = {
        **os.environ,
        "RUNPOD_API_KEY": KEY,
        "SWARMPOD_WORKER_PROTOCOL": "v2",
        "SWARMPOD_STATE_FILE": str(state),
        "SWARMPOD_POLL_INTERVAL_MS": "500",
    }
    command = [
        *(sys.executable, "-m", "orchestrator.cli", "generate", "a fox", "--steps", "4"),
        *("--width", "64", "--height", "64", "--endpoint-id", ENDPOINT),
        *("--base-url", emulator.base_url, "--out", str(out)),
    ]
    process = subprocess.Popen(  # noqa: ASYNC220 (polled without blocking below)
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        with anyio.fail_after(30):
            while not any(w.swarm.busy for w in endpoint.running_workers()):  # noqa: ASYNC110
                await anyio.sleep(0.05)
        os.kill(process.pid, signum)
        with anyio.fail_after(15):
            while process.poll() is None:  # noqa: ASYNC110
                await anyio.sleep(0.05)
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode


def the_lease(emulator: Emulator) -> Any:
    endpoint = emulator.endpoint(ENDPOINT)
    (lease,) = [job for job in endpoint.jobs.values() if job.input.get("action") == "lease"]
    return lease


async def test_sigkill_mid_generation_then_restart_cancels_the_open_lease(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite3"
    config = EmulatorConfig(endpoints={ENDPOINT: ENDPOINT_CONFIG}, api_keys=(KEY,))
    async with Emulator(config) as emulator:
        endpoint = emulator.endpoint(ENDPOINT)
        await generate_then_signal(emulator, state, tmp_path / "out", signal.SIGKILL)
        lease = the_lease(emulator)
        assert lease.status == "IN_PROGRESS"  # nobody will cancel it: the process is dead
        assert (await (await LeaseJournal.open(state)).open_entries())[0].job_id == lease.id

        started = anyio.current_time()
        settings = settings_for(
            emulator, WorkerProtocol="v2", StateFile=str(state), PollIntervalMs=500
        )
        async with Orchestrator(settings) as orch:
            took = anyio.current_time() - started
            assert [r.entry.job_id for r in orch.recovered if r.cancelled] == [lease.id]
            assert took < orch.settings.poll_interval  # within one poll of the start
        assert lease.status == "CANCELLED"
        with anyio.fail_after(5):
            while endpoint.running_workers():  # noqa: ASYNC110
                await anyio.sleep(0.05)
        assert all(entry.stopped_at is not None for entry in endpoint.ledger)


async def test_sigterm_mid_generation_releases_the_worker_before_the_process_exits(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state.sqlite3"
    config = EmulatorConfig(endpoints={ENDPOINT: ENDPOINT_CONFIG}, api_keys=(KEY,))
    async with Emulator(config) as emulator:
        status = await generate_then_signal(emulator, state, tmp_path / "out", signal.SIGTERM)
        assert status == 143
        assert the_lease(emulator).status == "CANCELLED"
        assert await (await LeaseJournal.open(state)).open_entries() == []

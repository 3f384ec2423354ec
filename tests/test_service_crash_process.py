"""Crash-safe release under the service, with real processes: ``swarmpod serve`` is killed with
SIGKILL mid-generation, once on a backend with its own key and once on a backend that uses
the user's own key, after a ``swarmpod generate`` shared its state file and exited; the next
``swarmpod serve`` cancels every lease it left, and the emulator's ledger shows each worker
stopped.

Real time (subprocesses cannot share the virtual clock): cold starts of a fraction of a
second, generations of 20 s that the kill interrupts.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from anyio.abc import Process
from cryptography.fernet import Fernet

from benchmarks.replicas import serve_url
from orchestrator.accounts import Accounts, Role
from orchestrator.emulator import Emulator, EmulatorConfig, EndpointConfig
from orchestrator.emulator.swarm import SwarmConfig
from orchestrator.secrets import Secret
from orchestrator.workers import LeaseJournal

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

BACKEND_KEY = "backend-key-0123456789"
ANN_KEY = "ann-own-key-0123456789"
MASTER_KEY = Fernet.generate_key().decode()
SLOW = EndpointConfig(
    protocol="v2",
    cold_start_s=0.3,
    idle_timeout_s=1.0,  # a cancelled lease's worker idles out after it
    queue_delay_s=0.0,
    swarm=SwarmConfig(seconds_per_step=5.0),
)
QUICK = EndpointConfig(protocol="v2", cold_start_s=0.3, idle_timeout_s=1.0, queue_delay_s=0.0)
ENDPOINTS = {"ep-backend-key": SLOW, "ep-user-key": SLOW, "ep-cli": QUICK}


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    """Real time for the module's subprocess test (asyncio's own loop, closed after)."""
    return ("asyncio", {"loop_factory": asyncio.new_event_loop})


def write_config(path: Path, state_dir: Path, base_url: str) -> None:
    common = f'RunPodBaseUrl = "{base_url}"\nWorkerProtocol = "v2"\nPollIntervalMs = 500\n'
    path.write_text(
        f'[service]\nhost = "127.0.0.1"\nport = 0\nstate_dir = "{state_dir}"\n\n'
        f'[backends.owned]\nEndpointId = "ep-backend-key"\nRunPodApiKey = "{BACKEND_KEY}"\n'
        f"{common}\n"
        f'[backends.users]\nEndpointId = "ep-user-key"\n{common}'
    )


async def add_ann(state_dir: Path) -> str:
    """A power user with her own RunPod key; returns her API token."""
    async with await Accounts.open(
        state_dir / "accounts.sqlite3", env={"SWARMPOD_MASTER_KEY": MASTER_KEY}
    ) as accounts:
        await accounts.add_user("ann", Role.POWERUSER)
        await accounts.set_runpod_key("ann", Secret(ANN_KEY))
        return (await accounts.issue_token("ann")).reveal()


def environment(**more: str) -> dict[str, str]:
    return {**os.environ, "SWARMPOD_MASTER_KEY": MASTER_KEY, "COLUMNS": "200", **more}


@asynccontextmanager
async def serving(config: Path, log: Path) -> AsyncIterator[tuple[Process, str]]:
    """``swarmpod serve``, once it printed its URL (to ``log``); killed at the end if alive."""
    command = [sys.executable, "-m", "orchestrator.cli", "serve", "--config", str(config)]
    with log.open("wb") as output:
        process = await anyio.open_process(command, env=environment(), stdout=output, stderr=output)
    async with process:
        try:
            yield process, await serve_url(process, log)
        finally:
            if process.returncode is None:
                process.kill()
            with anyio.CancelScope(shield=True):
                await process.wait()


async def generate_with_the_cli(state: Path, base_url: str, out: Path) -> None:
    """A ``swarmpod generate`` beside the service, on the same state file, to its end."""
    command = [
        *(sys.executable, "-m", "orchestrator.cli", "generate", "a fox", "--steps", "2"),
        *("--width", "64", "--height", "64", "--endpoint-id", "ep-cli"),
        *("--base-url", base_url, "--out", str(out)),
    ]
    env = environment(
        RUNPOD_API_KEY=BACKEND_KEY,
        SWARMPOD_WORKER_PROTOCOL="v2",
        SWARMPOD_STATE_FILE=str(state),
        SWARMPOD_IDLE_TIMEOUT_SEC="0",
    )
    with anyio.fail_after(60):
        await anyio.run_process(command, env=env)


async def generate_on(url: str, token: str, backend_id: int) -> None:
    """A generation through the service's API (it never ends: the service is killed)."""
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.post(f"{url}/API/GetNewSession", json={}) as response:
            session_id = (await response.json())["session_id"]
        body = {
            "session_id": session_id,
            "images": 1,
            "prompt": "a lighthouse",
            "width": 64,
            "height": 64,
            "steps": 4,
            "exactbackendid": backend_id,
        }
        with pytest.raises(aiohttp.ClientError):
            async with http.post(f"{url}/API/GenerateText2Image", json=body) as response:
                await response.read()


def leases(emulator: Emulator, endpoint_id: str) -> list[Any]:
    jobs = emulator.endpoint(endpoint_id).jobs.values()
    return [job for job in jobs if job.input.get("action") == "lease"]


async def until(condition: Any, timeout_s: float = 30.0) -> None:
    with anyio.fail_after(timeout_s):
        while not condition():  # noqa: ASYNC110
            await anyio.sleep(0.05)


async def test_serve_killed_mid_generation_with_backend_and_user_keys_cancels_every_lease(
    tmp_path: Path,
) -> None:
    state_dir = tmp_path / "state"
    state = state_dir / "swarmpod.sqlite3"
    config = EmulatorConfig(endpoints=ENDPOINTS, api_keys=(BACKEND_KEY, ANN_KEY))
    async with Emulator(config) as emulator:
        write_config(tmp_path / "serve.toml", state_dir, emulator.base_url)
        token = await add_ann(state_dir)
        async with serving(tmp_path / "serve.toml", tmp_path / "serve-1.log") as (serve, url):
            await generate_with_the_cli(state, emulator.base_url, tmp_path / "out")
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(generate_on, url, token, 0)  # the backend's own key
                tasks.start_soon(generate_on, url, token, 1)  # ann's own key
                await until(
                    lambda: all(
                        any(w.swarm.busy for w in emulator.endpoint(ep).running_workers())
                        for ep in ("ep-backend-key", "ep-user-key")
                    )
                )
                os.kill(serve.pid, signal.SIGKILL)
        orphans = leases(emulator, "ep-backend-key") + leases(emulator, "ep-user-key")
        assert [lease.status for lease in orphans] == ["IN_PROGRESS", "IN_PROGRESS"]
        journal = await LeaseJournal.open(state)
        assert len(await journal.open_entries()) == 2  # nobody left alive to close them
        await journal.close_file()

        async with serving(tmp_path / "serve.toml", tmp_path / "serve-2.log") as (serve, _):
            assert [lease.status for lease in orphans] == ["CANCELLED", "CANCELLED"]
            for endpoint_id in ENDPOINTS:
                endpoint = emulator.endpoint(endpoint_id)
                await until(lambda endpoint=endpoint: not endpoint.running_workers())
                assert endpoint.ledger, endpoint_id
                assert all(entry.stopped_at is not None for entry in endpoint.ledger)
            serve.send_signal(signal.SIGTERM)
            with anyio.fail_after(30):
                assert await serve.wait() == 143
        assert await (await LeaseJournal.open(state)).open_entries() == []

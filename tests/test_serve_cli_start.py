"""``swarmpod users --config`` and ``swarmpod serve`` agree on the accounts; serve says what
keeps it from working at start (no users, an AutoRefresh without the backend key)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio
import pytest
from cryptography.fernet import Fernet
from pg_support import StoreSpot

from orchestrator import Settings, cli
from orchestrator.cli import _serve
from orchestrator.emulator import Emulator, EmulatorConfig, EndpointConfig
from orchestrator.service import ServiceConfig, SwarmpodService
from orchestrator.store import DatabaseUrl

pytestmark = pytest.mark.anyio


def swarmpod(argv: Sequence[str]) -> int:
    """``swarmpod ARGV`` as its process runs it: on a thread with an event loop of its own."""
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(cli.main, list(argv)).result()


def serve_toml(tmp_path: Path, state_dir: Path, **backend: str) -> Path:
    rows = "".join(f'{name} = "{value}"\n' for name, value in backend.items())
    path = tmp_path / "serve.toml"
    path.write_text(
        f'[service]\nstate_dir = "{state_dir}"\n\n[backends.main]\n'
        f'EndpointId = "abc123"\nRunPodBaseUrl = "http://127.0.0.1:9/v2"\n{rows}'
    )
    return path


async def test_users_made_with_the_serve_config_are_the_users_serve_knows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state_dir = tmp_path / "served"
    toml = serve_toml(tmp_path, state_dir)
    assert swarmpod(["users", "--config", str(toml), "add", "ann", "--role", "poweruser"]) == 0
    assert swarmpod(["users", "token", "ann", "--config", str(toml)]) == 0
    token = capsys.readouterr().out.split()[-1]

    assert (state_dir / "accounts.sqlite3").is_file()
    default_dir = Path(os.environ["SWARMPOD_STATE_DIR"])
    assert not (default_dir / "accounts.sqlite3").exists()  # not the default database
    async with SwarmpodService(ServiceConfig.load(toml, port=0)) as service:
        user = await service.authenticate(f"Bearer {token}")
    assert user is not None and user.name == "ann"


def test_db_and_config_together_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = serve_toml(tmp_path, tmp_path / "served")
    argv = ["users", "--config", str(toml), "--db", str(tmp_path / "x.sqlite3"), "list"]
    assert cli.main(argv) == 2
    assert "either --db or --config" in capsys.readouterr().err


async def run_serve_briefly(config: ServiceConfig, toml: Path) -> None:
    args = argparse.Namespace(service_config=config, config=toml)
    with anyio.move_on_after(5):
        await _serve._serve(args)


async def test_serve_says_it_has_no_users_and_that_auto_refresh_needs_the_backend_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator_config = EmulatorConfig(endpoints={"ep": EndpointConfig()}, api_keys=("k",))
    async with Emulator(emulator_config) as emulator:
        backend = Settings.from_mapping(
            {
                "EndpointId": "ep",
                "RunPodBaseUrl": emulator.base_url,
                "AutoRefresh": True,
                "StateFile": str(tmp_path / "state" / "swarmpod.sqlite3"),
            }
        )
        config = ServiceConfig(
            host="127.0.0.1", port=0, state_dir=tmp_path / "state", backends={"main": backend}
        )
        await run_serve_briefly(config, tmp_path / "serve.toml")
        assert emulator.endpoint("ep").jobs == {}  # nothing was woken for the discovery
    err = " ".join(capsys.readouterr().err.split())
    assert (
        "no users yet: every API call is refused (401) until you add one and issue a token: "
        f"swarmpod users --config {tmp_path / 'serve.toml'} add NAME --role poweruser"
    ) in err
    assert "backend main: AutoRefresh skipped, it needs the backend's RunPodApiKey" in err


async def test_serve_with_users_and_a_backend_key_has_nothing_to_say(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = serve_toml(tmp_path, tmp_path / "served", RunPodApiKey="rpa_backend_key_123456")
    assert swarmpod(["users", "--config", str(toml), "add", "ann"]) == 0
    await run_serve_briefly(ServiceConfig.load(toml, port=0), toml)
    err = capsys.readouterr().err
    assert "no users yet" not in err and "AutoRefresh skipped" not in err


async def test_serve_says_which_store_it_uses_never_its_password(
    spot: StoreSpot, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = None
    if spot.url is not None:  # the test server trusts any password: give one to hide
        database = DatabaseUrl(spot.url.reveal().replace("postgres:@", "postgres:pw-s3cret@"))
    emulator_config = EmulatorConfig(endpoints={"ep": EndpointConfig()}, api_keys=("k",))
    async with Emulator(emulator_config) as emulator:
        backend = Settings.from_mapping(
            {"EndpointId": "ep", "RunPodBaseUrl": emulator.base_url, "RunPodApiKey": "k"}
        )
        config = ServiceConfig(
            host="127.0.0.1",
            port=0,
            state_dir=tmp_path / "state",
            backends={"main": backend},
            database=database,
        )
        env = {"SWARMPOD_MASTER_KEY": Fernet.generate_key().decode()}
        with pytest.MonkeyPatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            await run_serve_briefly(config, tmp_path / "serve.toml")
    said = " ".join(capsys.readouterr().err.split())
    if database is None:
        assert f"state store: SQLite files in {tmp_path / 'state'}" in said
    else:
        assert f"state store: PostgreSQL {database.shown}" in said
        assert "pw-s3cret" not in said and "postgres@" in said

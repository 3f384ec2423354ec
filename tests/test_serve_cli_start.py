"""``swarmpod users --config`` and ``swarmpod serve`` agree on the accounts; serve says what
keeps it from working at start (no users, an AutoRefresh without the backend key)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import anyio
import pytest

from orchestrator import Settings, cli
from orchestrator.cli import _serve
from orchestrator.emulator import Emulator, EmulatorConfig, EndpointConfig
from orchestrator.service import ServiceConfig, SwarmpodService

pytestmark = pytest.mark.anyio


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
    assert cli.main(["users", "--config", str(toml), "add", "ann", "--role", "poweruser"]) == 0
    assert cli.main(["users", "token", "ann", "--config", str(toml)]) == 0
    token = capsys.readouterr().out.split()[-1]

    assert (state_dir / "accounts.sqlite3").is_file()
    default_dir = Path(os.environ["SWARMPOD_STATE_DIR"])
    assert not (default_dir / "accounts.sqlite3").exists()  # not the default database
    async with SwarmpodService(ServiceConfig.load(toml, port=0)) as service:
        user = service.authenticate(f"Bearer {token}")
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
    assert cli.main(["users", "--config", str(toml), "add", "ann"]) == 0
    await run_serve_briefly(ServiceConfig.load(toml, port=0), toml)
    err = capsys.readouterr().err
    assert "no users yet" not in err and "AutoRefresh skipped" not in err

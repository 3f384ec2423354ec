"""An unusable SQLite file (state, accounts, models) stops a start with one line that names
the file and says what to do, exit 2; the file is never overwritten."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from orchestrator._state import connect_private
from orchestrator.accounts import Accounts
from orchestrator.errors import OrchestratorError, StateFileError
from orchestrator.models import ModelRegistry
from orchestrator.workers import GpuBudget, LeaseJournal

MASTER_KEY = Fernet.generate_key().decode()


def not_a_database(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"these are not the bytes of a SQLite file\n" * 200)
    return path.read_bytes()


def damaged_database(path: Path) -> bytes:
    """A real SQLite file whose table pages were overwritten (a bad disk, a torn copy)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE leases (job TEXT)")
        db.executemany("INSERT INTO leases VALUES (?)", [("x" * 500,)] * 200)
    db.close()
    raw = bytearray(path.read_bytes())
    raw[8192:12288] = b"\x55" * 4096
    path.write_bytes(bytes(raw))
    return bytes(raw)


BREAKAGES = {"not a database": not_a_database, "damaged": damaged_database}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
@pytest.mark.parametrize(
    "opener",
    [
        lambda path: LeaseJournal.open(path),
        lambda path: GpuBudget.open(path, limit_s=0),
        lambda path: Accounts.open(path, env={"SWARMPOD_MASTER_KEY": MASTER_KEY}),
        lambda path: ModelRegistry.open(path),
    ],
    ids=["journal", "budget", "accounts", "models"],
)
@pytest.mark.anyio
async def test_every_store_refuses_an_unusable_file_and_leaves_it_as_it_was(
    tmp_path: Path, breakage: str, opener: Callable[[Path], Awaitable[object]]
) -> None:
    path = tmp_path / "store.sqlite3"
    before = BREAKAGES[breakage](path)
    with pytest.raises(StateFileError) as refused:
        await opener(path)
    error = refused.value
    assert isinstance(error, OrchestratorError) and not error.retryable
    assert error.file == str(path)
    assert str(path) in str(error) and "move it aside" in str(error)
    assert "\n" not in str(error)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["store.sqlite3"]


@pytest.mark.anyio
async def test_the_message_says_what_moving_the_file_aside_loses(tmp_path: Path) -> None:
    not_a_database(tmp_path / "state.sqlite3")
    with pytest.raises(StateFileError, match="lease journal"):
        await LeaseJournal.open(tmp_path / "state.sqlite3")
    not_a_database(tmp_path / "accounts.sqlite3")
    with pytest.raises(StateFileError, match="users, API tokens and stored RunPod keys"):
        await Accounts.open(tmp_path / "accounts.sqlite3", env={"SWARMPOD_MASTER_KEY": MASTER_KEY})


def test_a_folder_where_the_file_should_be_is_refused_saying_so(tmp_path: Path) -> None:
    (tmp_path / "state.sqlite3").mkdir()
    with pytest.raises(StateFileError, match="cannot be opened or written") as refused:
        connect_private(tmp_path / "state.sqlite3")
    assert "not a folder" in str(refused.value)


def swarmpod(*argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the ``swarmpod`` command in its own process (the exit status is the real one)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("SWARMPOD_", "RUNPOD_"))}
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *argv],
        env={**environ, "COLUMNS": "300", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.slow
def test_generate_with_a_corrupt_state_file_exits_2_with_one_line(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite3"
    before = not_a_database(state)
    ran = swarmpod(
        *("generate", "a fox", "--endpoint-id", "ep", "--base-url", "http://127.0.0.1:9/v2"),
        *("--out", str(tmp_path / "out")),
        SWARMPOD_STATE_FILE=str(state),
        RUNPOD_API_KEY="rpa_never-used-0123456789",
    )
    assert ran.returncode == 2
    line = one_line(ran.stderr)
    assert "StateFileError" in line and str(state) in line and "move it aside" in line
    assert state.read_bytes() == before


@pytest.mark.slow
@pytest.mark.parametrize("broken", ["swarmpod.sqlite3", "accounts.sqlite3", "models.sqlite3"])
def test_serve_with_a_corrupt_file_in_its_state_dir_exits_2_naming_it(
    tmp_path: Path, broken: str
) -> None:
    state_dir = tmp_path / "state"
    before = not_a_database(state_dir / broken)
    config = tmp_path / "serve.toml"
    config.write_text(
        f'[service]\nstate_dir = "{state_dir}"\nport = 0\n'
        '[backends.main]\nEndpointId = "ep"\nRunPodBaseUrl = "http://127.0.0.1:9/v2"\n'
    )
    ran = swarmpod("serve", "--config", str(config), SWARMPOD_MASTER_KEY=MASTER_KEY)
    assert ran.returncode == 2
    assert str(state_dir / broken) in one_line(ran.stderr)
    assert (state_dir / broken).read_bytes() == before


@pytest.mark.slow
def test_generate_with_a_state_file_from_a_newer_swarmpod_exits_2_with_one_line(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state.sqlite3"
    with sqlite3.connect(state) as newer:
        newer.execute(
            "CREATE TABLE swarmpod_schema (component TEXT PRIMARY KEY, version INTEGER NOT NULL,"
            " migrated_at TEXT NOT NULL)"
        )
        newer.execute("INSERT INTO swarmpod_schema VALUES ('journal', 99, 'later')")
    newer.close()
    ran = swarmpod(
        *("generate", "a fox", "--endpoint-id", "ep", "--base-url", "http://127.0.0.1:9/v2"),
        *("--out", str(tmp_path / "out")),
        SWARMPOD_STATE_FILE=str(state),
        RUNPOD_API_KEY="rpa_never-used-0123456789",
    )
    assert ran.returncode == 2, ran.stderr
    lines = [line for line in ran.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "SchemaTooNewError" in lines[0] and "version 99" in lines[0]
    with sqlite3.connect(state) as after:  # its tables as they were
        assert after.execute("SELECT * FROM swarmpod_schema").fetchall() == [
            ("journal", 99, "later")
        ]
        tables = after.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        assert tables == [("swarmpod_schema",)]
    after.close()


@pytest.mark.slow
def test_serve_with_an_unreachable_database_exits_2_naming_it_without_the_password(
    tmp_path: Path,
) -> None:
    config = tmp_path / "serve.toml"
    config.write_text('[backends.main]\nEndpointId = "ep"\n')
    ran = swarmpod(
        "serve",
        "--config",
        str(config),
        SWARMPOD_DATABASE_URL="postgresql://swarm:hunter2-pw@127.0.0.1:9/db?connect_timeout=2",
        SWARMPOD_MASTER_KEY="unused",
        SWARMPOD_STATE_DIR=str(tmp_path / "state"),
    )
    assert ran.returncode == 2, ran.stderr
    assert "DatabaseError" in ran.stderr and "postgresql://swarm@127.0.0.1:9/db" in ran.stderr
    assert "hunter2-pw" not in ran.stderr + ran.stdout

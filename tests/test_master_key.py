"""The master key: SWARMPOD_MASTER_KEY or a 0600 key file, and a wrong one refused at open."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from orchestrator.accounts import Accounts
from orchestrator.errors import MasterKeyError, OrchestratorError
from orchestrator.secrets import Secret
from orchestrator.store import SqliteStore

pytestmark = pytest.mark.anyio

RUNPOD_KEY = "rpa_MASTERKEYTEST0123456789ABCDEF"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def new_key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "accounts.sqlite3"


async def first_start(db: Path, **open_args: Any) -> None:
    """Create the database with one user and their key, then close it."""
    async with await Accounts.open(db, **open_args) as accounts:
        await accounts.add_user("ann")
        await accounts.set_runpod_key("ann", Secret(RUNPOD_KEY))


async def test_without_the_env_var_a_key_file_is_made_0600_beside_the_database(db: Path) -> None:
    await first_start(db, env={})
    key_file = db.with_name("accounts.sqlite3.key")
    assert mode(key_file) == 0o600 and mode(db) == 0o600
    Fernet(key_file.read_bytes().strip())  # a well-formed Fernet key


async def test_the_wal_files_are_0600_like_the_database(db: Path) -> None:
    async with await Accounts.open(db, env={}) as accounts:
        await accounts.add_user("ann")
        companions = [p for p in db.parent.iterdir() if p.name.startswith(db.name + "-")]
        assert companions and all(mode(p) == 0o600 for p in companions)


async def test_the_key_file_is_made_0600_whatever_the_umask(db: Path) -> None:
    previous = os.umask(0)
    try:
        await first_start(db, env={})
    finally:
        os.umask(previous)
    assert mode(db.with_name("accounts.sqlite3.key")) == 0o600 and mode(db) == 0o600


async def test_the_key_file_is_reused_at_the_next_start(db: Path) -> None:
    await first_start(db, env={})
    key_file = db.with_name("accounts.sqlite3.key")
    before = key_file.read_bytes()
    async with await Accounts.open(db, env={}) as again:
        assert await again.runpod_key("ann") == Secret(RUNPOD_KEY)
    assert key_file.read_bytes() == before


async def test_a_key_file_can_be_put_elsewhere(db: Path, tmp_path: Path) -> None:
    key_file = tmp_path / "secrets" / "master.key"
    await first_start(db, env={}, key_file=key_file)
    assert mode(key_file) == 0o600 and not db.with_name("accounts.sqlite3.key").exists()
    async with await Accounts.open(db, env={}, key_file=key_file) as again:
        assert await again.runpod_key("ann") == Secret(RUNPOD_KEY)


async def test_the_env_var_wins_and_no_key_file_is_made(db: Path) -> None:
    env = {"SWARMPOD_MASTER_KEY": new_key()}
    await first_start(db, env=env)
    assert not db.with_name("accounts.sqlite3.key").exists()
    async with await Accounts.open(db, env=env) as again:
        assert await again.runpod_key("ann") == Secret(RUNPOD_KEY)


async def test_the_env_var_is_read_from_the_process_environment_by_default(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWARMPOD_MASTER_KEY", new_key())
    await first_start(db)
    assert not db.with_name("accounts.sqlite3.key").exists()


async def test_an_empty_env_var_counts_as_unset(db: Path) -> None:
    await first_start(db, env={"SWARMPOD_MASTER_KEY": "  "})
    assert db.with_name("accounts.sqlite3.key").exists()


async def test_a_changed_env_key_fails_at_open_saying_what_to_do(db: Path) -> None:
    old, wrong = new_key(), new_key()
    await first_start(db, env={"SWARMPOD_MASTER_KEY": old})
    with pytest.raises(MasterKeyError) as refused:
        await Accounts.open(db, env={"SWARMPOD_MASTER_KEY": wrong})
    error = refused.value
    assert isinstance(error, OrchestratorError) and error.source == "env SWARMPOD_MASTER_KEY"
    assert str(error).startswith(
        "The master key from env SWARMPOD_MASTER_KEY does not decrypt this database's keys"
    )
    assert "Restore that key" in str(error) and str(db) in str(error)
    assert old not in str(error) and wrong not in str(error) and wrong not in repr(error)


async def test_a_replaced_key_file_fails_at_open(db: Path) -> None:
    await first_start(db, env={})
    key_file = db.with_name("accounts.sqlite3.key")
    key_file.write_bytes(Fernet.generate_key())
    with pytest.raises(MasterKeyError, match="does not decrypt") as refused:
        await Accounts.open(db, env={})
    assert refused.value.source == f"key file {key_file}"


async def test_switching_from_the_key_file_to_another_env_key_fails_at_open(db: Path) -> None:
    await first_start(db, env={})
    with pytest.raises(MasterKeyError, match="does not decrypt"):
        await Accounts.open(db, env={"SWARMPOD_MASTER_KEY": new_key()})


async def test_the_key_file_and_the_env_var_are_interchangeable_when_they_hold_the_same_key(
    db: Path,
) -> None:
    await first_start(db, env={})
    key = db.with_name("accounts.sqlite3.key").read_text().strip()
    async with await Accounts.open(db, env={"SWARMPOD_MASTER_KEY": key}) as again:
        assert await again.runpod_key("ann") == Secret(RUNPOD_KEY)


async def test_a_lost_key_file_is_not_silently_replaced_by_a_new_key(db: Path) -> None:
    await first_start(db, env={})
    key_file = db.with_name("accounts.sqlite3.key")
    key_file.unlink()
    with pytest.raises(MasterKeyError, match=r"missing, but .* holds keys encrypted") as refused:
        await Accounts.open(db, env={})
    assert refused.value.source == f"key file {key_file}" and "Restore the key file" in str(
        refused.value
    )
    assert not key_file.exists()


async def test_a_refused_open_changes_nothing(db: Path) -> None:
    await first_start(db, env={})
    with pytest.raises(MasterKeyError):
        await Accounts.open(db, env={"SWARMPOD_MASTER_KEY": new_key()})
    async with await Accounts.open(db, env={}) as again:
        assert await again.runpod_key("ann") == Secret(RUNPOD_KEY)


@pytest.mark.parametrize(
    # a real key cut short: fixed, so parallel test workers collect the same cases
    "malformed",
    ["not-a-key", "x" * 44, "Sv18zmNr6R3vddv8XTEpdFpa_Cn3xNsInTAGdg6dec", "ключ"],
)
async def test_a_malformed_env_key_is_refused_naming_the_variable_not_its_value(
    db: Path, malformed: str
) -> None:
    with pytest.raises(MasterKeyError) as refused:
        await Accounts.open(db, env={"SWARMPOD_MASTER_KEY": malformed})
    message = str(refused.value)
    assert refused.value.source == "env SWARMPOD_MASTER_KEY"
    assert message.startswith("The master key from env SWARMPOD_MASTER_KEY is not a Fernet key")
    assert "Fernet.generate_key()" in message  # how to make a good one
    assert malformed not in message and malformed not in repr(refused.value)
    assert refused.value.__cause__ is None and refused.value.__suppress_context__


async def test_a_malformed_key_file_is_refused_naming_the_file(db: Path) -> None:
    key_file = db.parent / "bad.key"
    key_file.parent.mkdir(parents=True)
    key_file.write_text("garbage-garbage\n")
    key_file.chmod(0o600)
    with pytest.raises(MasterKeyError, match="is not a Fernet key") as refused:
        await Accounts.open(db, env={}, key_file=key_file)
    assert refused.value.source == f"key file {key_file}" and "garbage" not in str(refused.value)


async def test_an_unreadable_key_file_is_refused_saying_so(db: Path) -> None:
    key_file = db.parent / "dir.key"
    key_file.mkdir(parents=True)  # a directory where the key file should be
    with pytest.raises(MasterKeyError, match="cannot be read") as refused:
        await Accounts.open(db, env={}, key_file=key_file)
    assert refused.value.source == f"key file {key_file}"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
async def test_a_key_file_others_may_read_or_write_is_refused_saying_how_to_fix_it(
    db: Path, mode: int
) -> None:
    await first_start(db, env={})
    key_file = db.with_name("accounts.sqlite3.key")
    key_file.chmod(mode)
    with pytest.raises(MasterKeyError, match=f"mode {mode:04o}") as refused:
        await Accounts.open(db, env={})
    assert f"chmod 600 {key_file}" in str(refused.value)
    assert key_file.read_text().strip() not in str(refused.value)
    assert refused.value.source == f"key file {key_file}"
    key_file.chmod(0o600)
    await (await Accounts.open(db, env={})).close()  # fixed: it starts


async def test_a_key_file_open_to_others_is_not_needed_when_the_env_key_is_set(db: Path) -> None:
    env = {"SWARMPOD_MASTER_KEY": Fernet.generate_key().decode()}
    await first_start(db, env=env)
    stray = db.with_name("accounts.sqlite3.key")
    stray.write_text("not used\n")
    stray.chmod(0o644)
    await (await Accounts.open(db, env=env)).close()


async def test_a_shared_database_needs_the_master_key_in_the_environment(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "accounts.sqlite3")  # a store given: no key file beside it
    try:
        with pytest.raises(MasterKeyError, match="needs the same master key, from") as refused:
            await Accounts.open(store, env={})
        assert "SWARMPOD_MASTER_KEY" in str(refused.value)
        assert "Fernet.generate_key()" in str(refused.value)
        assert not any(name.endswith(".key") for name in os.listdir(tmp_path))
    finally:
        await store.close()

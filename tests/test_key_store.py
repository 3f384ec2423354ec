"""Per-user RunPod keys: encrypted at rest, given only to their own user (a KeyProvider)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from orchestrator.accounts import Accounts, Role
from orchestrator.errors import AccountError, MissingApiKeyError
from orchestrator.keys import KeyProvider, resolve_runpod_key
from orchestrator.secrets import Secret

pytestmark = pytest.mark.anyio

ANN_KEY = "rpa_ANN0123456789ABCDEFGHIJKLMNOPQRSTUV"
BOB_KEY = "rpa_BOB0123456789ABCDEFGHIJKLMNOPQRSTUV"
NOW = dt.datetime(2026, 11, 28, 7, 30, 45, tzinfo=dt.UTC)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "accounts.sqlite3"


@pytest.fixture
def accounts(db: Path) -> Iterator[Accounts]:
    with Accounts.open(db, env={}, clock=lambda: NOW) as opened:  # key file beside the db
        opened.add_user("ann", Role.POWERUSER)
        opened.add_user("bob", Role.POWERUSER)
        yield opened


def every_byte_on_disk(directory: Path) -> bytes:
    """The database and its -wal / -shm / -journal files, and the key file."""
    return b"".join(p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file())


async def test_a_stored_key_comes_back_to_its_user(accounts: Accounts) -> None:
    accounts.set_runpod_key("ann", Secret(ANN_KEY))
    key = await accounts.runpod_key("ann")
    assert key == Secret(ANN_KEY) and repr(key) == "Secret('********')"


async def test_a_user_without_a_key_gets_none_never_another_users_key(accounts: Accounts) -> None:
    accounts.set_runpod_key("ann", Secret(ANN_KEY))
    assert await accounts.runpod_key("bob") is None
    assert await accounts.runpod_key("nobody") is None
    accounts.set_runpod_key("bob", Secret(BOB_KEY))
    assert await accounts.runpod_key("ann") == Secret(ANN_KEY)
    assert await accounts.runpod_key("bob") == Secret(BOB_KEY)


async def test_the_store_is_the_services_key_provider(accounts: Accounts) -> None:
    provider: KeyProvider = accounts
    accounts.set_runpod_key("ann", Secret(ANN_KEY))
    assert await resolve_runpod_key(None, "ann", provider) == Secret(ANN_KEY)
    with pytest.raises(MissingApiKeyError):
        await resolve_runpod_key(None, "bob", provider)


async def test_the_status_says_when_the_key_was_set_as_swarmui_does(accounts: Accounts) -> None:
    assert accounts.runpod_key_status("ann") == "not set"
    accounts.set_runpod_key("ann", Secret(ANN_KEY))
    assert accounts.runpod_key_status("ann") == "last updated 2026-11-28 07:30"
    assert accounts.runpod_key_status("bob") == "not set"


async def test_setting_a_key_again_replaces_it_and_its_date(db: Path) -> None:
    clock = iter([NOW, NOW + dt.timedelta(days=3, minutes=1)])
    with Accounts.open(db, env={}, clock=lambda: next(clock)) as accounts:
        accounts.add_user("ann")
        accounts.set_runpod_key("ann", Secret(ANN_KEY))
        accounts.set_runpod_key("ann", Secret(BOB_KEY))
        assert await accounts.runpod_key("ann") == Secret(BOB_KEY)
        assert accounts.runpod_key_status("ann") == "last updated 2026-12-01 07:31"


async def test_none_deletes_the_key(accounts: Accounts) -> None:
    accounts.set_runpod_key("ann", Secret(ANN_KEY))
    accounts.set_runpod_key("ann", None)
    assert await accounts.runpod_key("ann") is None
    assert accounts.runpod_key_status("ann") == "not set"
    accounts.set_runpod_key("ann", None)  # deleting no key is fine


@pytest.mark.parametrize("bad", ["", "rpa_A B", " ", "rpa_A\nrpa_B"])
async def test_an_empty_or_spaced_key_is_refused_without_showing_it(
    accounts: Accounts, bad: str
) -> None:
    with pytest.raises(AccountError, match="empty or has whitespace") as refused:
        accounts.set_runpod_key("ann", Secret(bad))
    assert (bad.strip() or "@@") not in str(refused.value)
    assert accounts.runpod_key_status("ann") == "not set"


async def test_keys_of_an_unknown_user_are_refused(accounts: Accounts) -> None:
    with pytest.raises(AccountError, match="no user 'cid'") as refused:
        accounts.set_runpod_key("cid", Secret(ANN_KEY))
    assert refused.value.user == "cid" and ANN_KEY not in str(refused.value)
    with pytest.raises(AccountError, match="no user 'cid'"):
        accounts.runpod_key_status("cid")


async def test_a_removed_users_key_is_deleted_with_them(accounts: Accounts) -> None:
    accounts.set_runpod_key("bob", Secret(BOB_KEY))
    accounts.remove_user("bob")
    accounts.add_user("bob")  # the same name again is a new user, without the old key
    assert await accounts.runpod_key("bob") is None


async def test_the_files_on_disk_never_hold_a_key_in_clear(db: Path) -> None:
    accounts = Accounts.open(db, env={})
    accounts.add_user("ann")
    accounts.set_runpod_key("ann", Secret(ANN_KEY))
    accounts.add_user("bob")
    accounts.set_runpod_key("bob", Secret(BOB_KEY))
    accounts.set_runpod_key("bob", None)
    assert ANN_KEY.encode() not in every_byte_on_disk(db.parent)  # open: database and WAL
    assert BOB_KEY.encode() not in every_byte_on_disk(db.parent)
    accounts.close()
    on_disk = every_byte_on_disk(db.parent)
    assert ANN_KEY.encode() not in on_disk and BOB_KEY.encode() not in on_disk
    assert ANN_KEY[4:20].encode() not in on_disk  # not even a part of it


async def test_keys_still_decrypt_after_a_restart_with_the_same_key_file(db: Path) -> None:
    with Accounts.open(db, env={}) as accounts:
        accounts.add_user("ann")
        accounts.set_runpod_key("ann", Secret(ANN_KEY))
    with Accounts.open(db, env={}) as again:
        assert await again.runpod_key("ann") == Secret(ANN_KEY)


async def test_keys_still_decrypt_after_a_restart_with_the_same_env_key(db: Path) -> None:
    env = {"SWARMPOD_MASTER_KEY": Fernet.generate_key().decode()}
    with Accounts.open(db, env=env) as accounts:
        accounts.add_user("ann")
        accounts.set_runpod_key("ann", Secret(ANN_KEY))
    with Accounts.open(db, env=env) as again:
        assert await again.runpod_key("ann") == Secret(ANN_KEY)


async def test_a_key_moved_to_another_users_row_is_refused_not_handed_over(
    accounts: Accounts, db: Path
) -> None:
    accounts.set_runpod_key("ann", Secret(ANN_KEY))
    accounts.set_runpod_key("bob", Secret(BOB_KEY))
    with sqlite3.connect(db) as tamper:  # someone with write access to the file
        tamper.execute(
            "UPDATE runpod_keys SET encrypted = "
            "(SELECT encrypted FROM runpod_keys WHERE user = 'ann') WHERE user = 'bob'"
        )
    tamper.close()
    with pytest.raises(AccountError, match="database was altered") as refused:
        await accounts.runpod_key("bob")
    assert refused.value.user == "bob" and ANN_KEY not in str(refused.value)
    assert await accounts.runpod_key("ann") == Secret(ANN_KEY)


async def test_a_corrupted_key_is_refused_with_what_to_do(accounts: Accounts, db: Path) -> None:
    accounts.set_runpod_key("ann", Secret(ANN_KEY))
    with sqlite3.connect(db) as tamper:
        tamper.execute("UPDATE runpod_keys SET encrypted = X'00'")
    tamper.close()
    with pytest.raises(AccountError, match="swarmpod users set-key ann"):
        await accounts.runpod_key("ann")


async def test_every_stored_key_is_given_for_recovery_skipping_an_altered_one(
    accounts: Accounts, db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert accounts.stored_runpod_keys() == []
    accounts.set_runpod_key("ann", Secret(ANN_KEY))
    accounts.set_runpod_key("bob", Secret(BOB_KEY))
    assert accounts.stored_runpod_keys() == [Secret(ANN_KEY), Secret(BOB_KEY)]
    with sqlite3.connect(db) as tamper:
        tamper.execute("UPDATE runpod_keys SET encrypted = X'00' WHERE user = 'bob'")
    tamper.close()
    assert accounts.stored_runpod_keys() == [Secret(ANN_KEY)]
    assert "swarmpod users set-key bob" in caplog.text and BOB_KEY not in caplog.text

"""Per-user RunPod keys: encrypted at rest, given only to their own user (a KeyProvider)."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Callable, Mapping

import pytest
from cryptography.fernet import Fernet
from pg_support import StoreSpot, everything_stored, sqlite_only

from orchestrator.accounts import Accounts, Role
from orchestrator.errors import AccountError, MissingApiKeyError
from orchestrator.keys import KeyProvider, resolve_runpod_key
from orchestrator.secrets import Secret

pytestmark = pytest.mark.anyio

ANN_KEY = "rpa_ANN0123456789ABCDEFGHIJKLMNOPQRSTUV"
BOB_KEY = "rpa_BOB0123456789ABCDEFGHIJKLMNOPQRSTUV"
NOW = dt.datetime(2026, 11, 28, 7, 30, 45, tzinfo=dt.UTC)


SHARED_MASTER_KEY = Fernet.generate_key().decode()


@contextlib.asynccontextmanager
async def opened(
    spot: StoreSpot,
    *,
    env: Mapping[str, str] | None = None,
    clock: Callable[[], dt.datetime] | None = None,
) -> AsyncIterator[Accounts]:
    """The accounts of the spot: a SQLite file with its master key file beside it (no
    SWARMPOD_MASTER_KEY), or PostgreSQL with the master key every replica shares."""
    if spot.url is None:
        async with await Accounts.open(spot.path, env=env or {}, clock=clock) as accounts:
            yield accounts
        return
    shared = env or {"SWARMPOD_MASTER_KEY": SHARED_MASTER_KEY}
    async with (
        spot.open() as store,
        await Accounts.open(store, env=shared, clock=clock) as accounts,
    ):
        yield accounts


@pytest.fixture
async def accounts(spot: StoreSpot) -> AsyncIterator[Accounts]:
    async with opened(spot, clock=lambda: NOW) as accounts:
        await accounts.add_user("ann", Role.POWERUSER)
        await accounts.add_user("bob", Role.POWERUSER)
        yield accounts


async def test_a_stored_key_comes_back_to_its_user(accounts: Accounts) -> None:
    await accounts.set_runpod_key("ann", Secret(ANN_KEY))
    key = await accounts.runpod_key("ann")
    assert key == Secret(ANN_KEY) and repr(key) == "Secret('********')"


async def test_a_user_without_a_key_gets_none_never_another_users_key(accounts: Accounts) -> None:
    await accounts.set_runpod_key("ann", Secret(ANN_KEY))
    assert await accounts.runpod_key("bob") is None
    assert await accounts.runpod_key("nobody") is None
    await accounts.set_runpod_key("bob", Secret(BOB_KEY))
    assert await accounts.runpod_key("ann") == Secret(ANN_KEY)
    assert await accounts.runpod_key("bob") == Secret(BOB_KEY)


async def test_the_store_is_the_services_key_provider(accounts: Accounts) -> None:
    provider: KeyProvider = accounts
    await accounts.set_runpod_key("ann", Secret(ANN_KEY))
    assert await resolve_runpod_key(None, "ann", provider) == Secret(ANN_KEY)
    with pytest.raises(MissingApiKeyError):
        await resolve_runpod_key(None, "bob", provider)


async def test_the_status_says_when_the_key_was_set_as_swarmui_does(accounts: Accounts) -> None:
    assert await accounts.runpod_key_status("ann") == "not set"
    await accounts.set_runpod_key("ann", Secret(ANN_KEY))
    assert await accounts.runpod_key_status("ann") == "last updated 2026-11-28 07:30"
    assert await accounts.runpod_key_status("bob") == "not set"


async def test_setting_a_key_again_replaces_it_and_its_date(spot: StoreSpot) -> None:
    clock = iter([NOW, NOW + dt.timedelta(days=3, minutes=1)])
    async with opened(spot, clock=lambda: next(clock)) as accounts:
        await accounts.add_user("ann")
        await accounts.set_runpod_key("ann", Secret(ANN_KEY))
        await accounts.set_runpod_key("ann", Secret(BOB_KEY))
        assert await accounts.runpod_key("ann") == Secret(BOB_KEY)
        assert await accounts.runpod_key_status("ann") == "last updated 2026-12-01 07:31"


async def test_none_deletes_the_key(accounts: Accounts) -> None:
    await accounts.set_runpod_key("ann", Secret(ANN_KEY))
    await accounts.set_runpod_key("ann", None)
    assert await accounts.runpod_key("ann") is None
    assert await accounts.runpod_key_status("ann") == "not set"
    await accounts.set_runpod_key("ann", None)  # deleting no key is fine


@sqlite_only  # refused before the database is asked
@pytest.mark.parametrize("bad", ["", "rpa_A B", " ", "rpa_A\nrpa_B"])
async def test_an_empty_or_spaced_key_is_refused_without_showing_it(
    accounts: Accounts, bad: str
) -> None:
    with pytest.raises(AccountError, match="empty or has whitespace") as refused:
        await accounts.set_runpod_key("ann", Secret(bad))
    assert (bad.strip() or "@@") not in str(refused.value)
    assert await accounts.runpod_key_status("ann") == "not set"


async def test_keys_of_an_unknown_user_are_refused(accounts: Accounts) -> None:
    with pytest.raises(AccountError, match="no user 'cid'") as refused:
        await accounts.set_runpod_key("cid", Secret(ANN_KEY))
    assert refused.value.user == "cid" and ANN_KEY not in str(refused.value)
    with pytest.raises(AccountError, match="no user 'cid'"):
        await accounts.runpod_key_status("cid")


async def test_a_removed_users_key_is_deleted_with_them(accounts: Accounts) -> None:
    await accounts.set_runpod_key("bob", Secret(BOB_KEY))
    await accounts.remove_user("bob")
    await accounts.add_user("bob")  # the same name again is a new user, without the old key
    assert await accounts.runpod_key("bob") is None


async def test_the_store_never_holds_a_key_in_clear(spot: StoreSpot) -> None:
    async with opened(spot) as accounts:
        await accounts.add_user("ann")
        await accounts.set_runpod_key("ann", Secret(ANN_KEY))
        await accounts.add_user("bob")
        await accounts.set_runpod_key("bob", Secret(BOB_KEY))
        await accounts.set_runpod_key("bob", None)
        stored = await everything_stored(spot, accounts.store)  # open: database and WAL
        assert ANN_KEY.encode() not in stored and BOB_KEY.encode() not in stored
        assert ANN_KEY[4:20].encode() not in stored  # not even a part of it
    if spot.url is None:  # closed: the file, and the key file beside it
        on_disk = b"".join(p.read_bytes() for p in spot.path.parent.iterdir() if p.is_file())
        assert ANN_KEY.encode() not in on_disk and BOB_KEY.encode() not in on_disk
        assert ANN_KEY[4:20].encode() not in on_disk


async def test_keys_still_decrypt_after_a_restart_with_the_same_master_key(
    spot: StoreSpot,
) -> None:
    async with opened(spot) as accounts:  # the key file, or the shared variable
        await accounts.add_user("ann")
        await accounts.set_runpod_key("ann", Secret(ANN_KEY))
    async with opened(spot) as again:
        assert await again.runpod_key("ann") == Secret(ANN_KEY)


async def test_keys_still_decrypt_after_a_restart_with_the_same_env_key(spot: StoreSpot) -> None:
    env = {"SWARMPOD_MASTER_KEY": Fernet.generate_key().decode()}
    async with opened(spot, env=env) as accounts:
        await accounts.add_user("ann")
        await accounts.set_runpod_key("ann", Secret(ANN_KEY))
    async with opened(spot, env=env) as again:
        assert await again.runpod_key("ann") == Secret(ANN_KEY)


async def test_a_key_set_through_one_replica_is_used_through_another(spot: StoreSpot) -> None:
    async with opened(spot) as first, opened(spot) as second:
        await first.add_user("ann")
        await first.set_runpod_key("ann", Secret(ANN_KEY))
        assert await second.runpod_key("ann") == Secret(ANN_KEY)
        assert await second.stored_runpod_keys() == [Secret(ANN_KEY)]


async def test_a_key_moved_to_another_users_row_is_refused_not_handed_over(
    accounts: Accounts,
) -> None:
    await accounts.set_runpod_key("ann", Secret(ANN_KEY))
    await accounts.set_runpod_key("bob", Secret(BOB_KEY))
    await accounts.store.execute(  # someone with write access to the database
        "UPDATE runpod_keys SET encrypted = "
        """(SELECT encrypted FROM runpod_keys WHERE "user" = 'ann') WHERE "user" = 'bob'"""
    )
    with pytest.raises(AccountError, match="database was altered") as refused:
        await accounts.runpod_key("bob")
    assert refused.value.user == "bob" and ANN_KEY not in str(refused.value)
    assert await accounts.runpod_key("ann") == Secret(ANN_KEY)


async def test_a_corrupted_key_is_refused_with_what_to_do(accounts: Accounts) -> None:
    await accounts.set_runpod_key("ann", Secret(ANN_KEY))
    await accounts.store.execute("UPDATE runpod_keys SET encrypted = ?", (b"\x00",))
    with pytest.raises(AccountError, match="swarmpod users set-key ann"):
        await accounts.runpod_key("ann")


async def test_every_stored_key_is_given_for_recovery_skipping_an_altered_one(
    accounts: Accounts, caplog: pytest.LogCaptureFixture
) -> None:
    assert await accounts.stored_runpod_keys() == []
    await accounts.set_runpod_key("ann", Secret(ANN_KEY))
    await accounts.set_runpod_key("bob", Secret(BOB_KEY))
    assert await accounts.stored_runpod_keys() == [Secret(ANN_KEY), Secret(BOB_KEY)]
    await accounts.store.execute(
        'UPDATE runpod_keys SET encrypted = ? WHERE "user" = ?', (b"\x00", "bob")
    )
    assert await accounts.stored_runpod_keys() == [Secret(ANN_KEY)]
    assert "swarmpod users set-key bob" in caplog.text and BOB_KEY not in caplog.text

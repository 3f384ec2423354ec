"""API tokens: issued once, stored only as their SHA-256, authenticate their user, revocable."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from cryptography.fernet import Fernet
from pg_support import StoreSpot, everything_stored

from orchestrator.accounts import Accounts, Role, TokenInfo, User
from orchestrator.errors import AccountError
from orchestrator.secrets import Secret

pytestmark = pytest.mark.anyio


class Clock:
    """A settable UTC clock for the store's timestamps."""

    def __init__(self) -> None:
        self.now = dt.datetime(2026, 11, 28, 7, 30, 12, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def env() -> dict[str, str]:
    return {"SWARMPOD_MASTER_KEY": Fernet.generate_key().decode()}


@pytest.fixture
async def accounts(spot: StoreSpot, env: dict[str, str], clock: Clock) -> AsyncIterator[Accounts]:
    async with spot.open() as store, await Accounts.open(store, env=env, clock=clock) as opened:
        await opened.add_user("ann", Role.POWERUSER)
        await opened.add_user("bob")
        yield opened


async def test_an_issued_token_authenticates_its_user(accounts: Accounts) -> None:
    token = await accounts.issue_token("ann")
    assert isinstance(token, Secret) and token.reveal().startswith("sp_")
    assert len(token.reveal()) >= 40  # "sp_" and 32 random bytes in base64
    assert await accounts.authenticate(token.reveal()) == User("ann", Role.POWERUSER)
    assert await accounts.authenticate(token) == User("ann", Role.POWERUSER)  # a Secret works too


async def test_a_token_shows_nothing_of_itself_when_printed(accounts: Accounts) -> None:
    token = await accounts.issue_token("ann")
    assert token.reveal() not in f"{token} {token!r} {token:>20}"


async def test_anything_but_an_issued_token_authenticates_nobody(accounts: Accounts) -> None:
    token = (await accounts.issue_token("ann")).reveal()
    for wrong in (token + "x", token[:-1], token.upper(), "", "sp_", "Bearer " + token):
        assert await accounts.authenticate(wrong) is None


async def test_each_token_authenticates_only_its_own_user(accounts: Accounts) -> None:
    ann, bob = await accounts.issue_token("ann"), await accounts.issue_token("bob")
    assert ann != bob
    assert await accounts.authenticate(ann) == User("ann", Role.POWERUSER)
    assert await accounts.authenticate(bob) == User("bob", Role.USER)


async def test_authenticating_gives_the_users_current_role(accounts: Accounts) -> None:
    token = await accounts.issue_token("bob")
    await accounts.set_role("bob", Role.ADMIN)
    assert await accounts.authenticate(token) == User("bob", Role.ADMIN)


async def test_tokens_are_listed_with_id_label_and_dates_never_the_token(
    accounts: Accounts, clock: Clock
) -> None:
    laptop = await accounts.issue_token("ann", label="laptop")
    clock.now += dt.timedelta(days=1)
    await accounts.issue_token("ann", label="ci")
    first, second = await accounts.list_tokens("ann")
    assert (first.label, first.created_at, first.last_used_at) == (
        "laptop",
        "2026-11-28 07:30",
        None,
    )
    assert (second.label, second.created_at) == ("ci", "2026-11-29 07:30")
    assert first.id != second.id and await accounts.list_tokens("bob") == []
    assert laptop.reveal() not in repr(await accounts.list_tokens("ann"))
    assert set(vars(first)) == {"id", "label", "created_at", "last_used_at"}


async def test_authenticating_records_when_the_token_was_last_used(
    accounts: Accounts, clock: Clock
) -> None:
    token = await accounts.issue_token("ann")
    clock.now += dt.timedelta(hours=2, minutes=5)
    await accounts.authenticate(token)
    (info,) = await accounts.list_tokens("ann")
    assert info == TokenInfo(info.id, "", "2026-11-28 07:30", "2026-11-28 09:35")


async def test_times_are_written_in_utc_whatever_the_clocks_zone(
    accounts: Accounts, clock: Clock
) -> None:
    clock.now = dt.datetime(2026, 11, 28, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    await accounts.issue_token("bob")
    assert (await accounts.list_tokens("bob"))[0].created_at == "2026-11-28 07:30"


async def test_a_revoked_token_no_longer_authenticates(accounts: Accounts) -> None:
    keep, drop = await accounts.issue_token("ann", label="keep"), await accounts.issue_token("ann")
    drop_id = (await accounts.list_tokens("ann"))[1].id
    assert await accounts.revoke_token("ann", drop_id) is True
    assert await accounts.authenticate(drop) is None
    assert await accounts.authenticate(keep) is not None
    assert [info.label for info in await accounts.list_tokens("ann")] == ["keep"]


async def test_revoking_an_unknown_or_another_users_token_revokes_nothing(
    accounts: Accounts,
) -> None:
    token = await accounts.issue_token("ann")
    (info,) = await accounts.list_tokens("ann")
    assert await accounts.revoke_token("ann", "no-such-id") is False
    assert await accounts.revoke_token("bob", info.id) is False  # ann's token, not bob's
    assert await accounts.authenticate(token) is not None


async def test_token_calls_for_an_unknown_user_are_refused(accounts: Accounts) -> None:
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: accounts.issue_token("cid"),
        lambda: accounts.list_tokens("cid"),
        lambda: accounts.revoke_token("cid", "x"),
    ]
    for call in calls:
        with pytest.raises(AccountError, match="no user 'cid'"):
            await call()


async def test_an_overlong_label_is_refused(accounts: Accounts) -> None:
    with pytest.raises(AccountError, match="keep it to 200"):
        await accounts.issue_token("ann", label="x" * 201)
    assert await accounts.list_tokens("ann") == []


async def test_a_removed_users_tokens_die_with_them(accounts: Accounts) -> None:
    token = await accounts.issue_token("bob")
    await accounts.remove_user("bob")
    await accounts.add_user("bob")  # the same name again is a new user
    assert await accounts.authenticate(token) is None and await accounts.list_tokens("bob") == []


async def test_tokens_survive_a_restart(spot: StoreSpot, env: dict[str, str]) -> None:
    async with spot.open() as store, await Accounts.open(store, env=env) as accounts:
        await accounts.add_user("ann")
        token = await accounts.issue_token("ann")
    async with spot.open() as store, await Accounts.open(store, env=env) as again:
        assert await again.authenticate(token) == User("ann", Role.USER)


async def test_a_user_and_token_made_through_one_replica_work_through_another(
    spot: StoreSpot, env: dict[str, str]
) -> None:
    async with (
        spot.open() as first_store,
        spot.open() as second_store,
        await Accounts.open(first_store, env=env) as first,
        await Accounts.open(second_store, env=env) as second,
    ):
        await first.add_user("ann", Role.POWERUSER)
        token = await first.issue_token("ann")
        assert await second.authenticate(token) == User("ann", Role.POWERUSER)
        with pytest.raises(AccountError, match="exists already"):
            await second.add_user("ANN")  # taken, ignoring case, whichever replica asks
        assert await second.revoke_token("ann", (await first.list_tokens("ann"))[0].id)
        assert await first.authenticate(token) is None


async def test_the_store_holds_only_the_tokens_hash(spot: StoreSpot, env: dict[str, str]) -> None:
    async with spot.open() as store:
        accounts = await Accounts.open(store, env=env)
        await accounts.add_user("ann")
        tokens = [(await accounts.issue_token("ann", label=f"t{i}")).reveal() for i in range(3)]
        await accounts.authenticate(tokens[0])
        await accounts.revoke_token("ann", (await accounts.list_tokens("ann"))[1].id)

        def only_hashes_in(stored: bytes) -> bool:
            hashed = hashlib.sha256(tokens[0].encode()).hexdigest().encode()
            clear = [t.encode() for t in tokens] + [t.removeprefix("sp_").encode() for t in tokens]
            return hashed in stored and not any(token in stored for token in clear)

        assert only_hashes_in(await everything_stored(spot, store))  # open: the file and its WAL
    if spot.url is None:  # closed: all in the SQLite file
        assert only_hashes_in(b"".join(p.read_bytes() for p in spot.path.parent.iterdir()))

"""API tokens: issued once, stored only as their SHA-256, authenticate their user, revocable."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from orchestrator.accounts import Accounts, Role, TokenInfo, User
from orchestrator.errors import AccountError
from orchestrator.secrets import Secret


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
def accounts(tmp_path: Path, env: dict[str, str], clock: Clock) -> Iterator[Accounts]:
    with Accounts.open(tmp_path / "accounts.sqlite3", env=env, clock=clock) as opened:
        opened.add_user("ann", Role.POWERUSER)
        opened.add_user("bob")
        yield opened


def every_byte_on_disk(directory: Path) -> bytes:
    """The database and its -wal / -shm / -journal files, whatever exists."""
    return b"".join(p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file())


def test_an_issued_token_authenticates_its_user(accounts: Accounts) -> None:
    token = accounts.issue_token("ann")
    assert isinstance(token, Secret) and token.reveal().startswith("sp_")
    assert len(token.reveal()) >= 40  # "sp_" and 32 random bytes in base64
    assert accounts.authenticate(token.reveal()) == User("ann", Role.POWERUSER)
    assert accounts.authenticate(token) == User("ann", Role.POWERUSER)  # a Secret works too


def test_a_token_shows_nothing_of_itself_when_printed(accounts: Accounts) -> None:
    token = accounts.issue_token("ann")
    assert token.reveal() not in f"{token} {token!r} {token:>20}"


def test_anything_but_an_issued_token_authenticates_nobody(accounts: Accounts) -> None:
    token = accounts.issue_token("ann").reveal()
    for wrong in (token + "x", token[:-1], token.upper(), "", "sp_", "Bearer " + token):
        assert accounts.authenticate(wrong) is None


def test_each_token_authenticates_only_its_own_user(accounts: Accounts) -> None:
    ann, bob = accounts.issue_token("ann"), accounts.issue_token("bob")
    assert ann != bob
    assert accounts.authenticate(ann) == User("ann", Role.POWERUSER)
    assert accounts.authenticate(bob) == User("bob", Role.USER)


def test_authenticating_gives_the_users_current_role(accounts: Accounts) -> None:
    token = accounts.issue_token("bob")
    accounts.set_role("bob", Role.ADMIN)
    assert accounts.authenticate(token) == User("bob", Role.ADMIN)


def test_tokens_are_listed_with_id_label_and_dates_never_the_token(
    accounts: Accounts, clock: Clock
) -> None:
    laptop = accounts.issue_token("ann", label="laptop")
    clock.now += dt.timedelta(days=1)
    accounts.issue_token("ann", label="ci")
    first, second = accounts.list_tokens("ann")
    assert (first.label, first.created_at, first.last_used_at) == (
        "laptop",
        "2026-11-28 07:30",
        None,
    )
    assert (second.label, second.created_at) == ("ci", "2026-11-29 07:30")
    assert first.id != second.id and accounts.list_tokens("bob") == []
    assert laptop.reveal() not in repr(accounts.list_tokens("ann"))
    assert set(vars(first)) == {"id", "label", "created_at", "last_used_at"}


def test_authenticating_records_when_the_token_was_last_used(
    accounts: Accounts, clock: Clock
) -> None:
    token = accounts.issue_token("ann")
    clock.now += dt.timedelta(hours=2, minutes=5)
    accounts.authenticate(token)
    (info,) = accounts.list_tokens("ann")
    assert info == TokenInfo(info.id, "", "2026-11-28 07:30", "2026-11-28 09:35")


def test_times_are_written_in_utc_whatever_the_clocks_zone(
    accounts: Accounts, clock: Clock
) -> None:
    clock.now = dt.datetime(2026, 11, 28, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    accounts.issue_token("bob")
    assert accounts.list_tokens("bob")[0].created_at == "2026-11-28 07:30"


def test_a_revoked_token_no_longer_authenticates(accounts: Accounts) -> None:
    keep, drop = accounts.issue_token("ann", label="keep"), accounts.issue_token("ann")
    drop_id = accounts.list_tokens("ann")[1].id
    assert accounts.revoke_token("ann", drop_id) is True
    assert accounts.authenticate(drop) is None
    assert accounts.authenticate(keep) is not None
    assert [info.label for info in accounts.list_tokens("ann")] == ["keep"]


def test_revoking_an_unknown_or_another_users_token_revokes_nothing(accounts: Accounts) -> None:
    token = accounts.issue_token("ann")
    (info,) = accounts.list_tokens("ann")
    assert accounts.revoke_token("ann", "no-such-id") is False
    assert accounts.revoke_token("bob", info.id) is False  # ann's token, not bob's
    assert accounts.authenticate(token) is not None


def test_token_calls_for_an_unknown_user_are_refused(accounts: Accounts) -> None:
    for call in (
        lambda: accounts.issue_token("cid"),
        lambda: accounts.list_tokens("cid"),
        lambda: accounts.revoke_token("cid", "x"),
    ):
        with pytest.raises(AccountError, match="no user 'cid'"):
            call()


def test_an_overlong_label_is_refused(accounts: Accounts) -> None:
    with pytest.raises(AccountError, match="keep it to 200"):
        accounts.issue_token("ann", label="x" * 201)
    assert accounts.list_tokens("ann") == []


def test_a_removed_users_tokens_die_with_them(accounts: Accounts) -> None:
    token = accounts.issue_token("bob")
    accounts.remove_user("bob")
    accounts.add_user("bob")  # the same name again is a new user
    assert accounts.authenticate(token) is None and accounts.list_tokens("bob") == []


def test_tokens_survive_a_restart(tmp_path: Path, env: dict[str, str]) -> None:
    with Accounts.open(tmp_path / "a.sqlite3", env=env) as accounts:
        accounts.add_user("ann")
        token = accounts.issue_token("ann")
    with Accounts.open(tmp_path / "a.sqlite3", env=env) as again:
        assert again.authenticate(token) == User("ann", Role.USER)


def test_the_files_on_disk_hold_only_the_tokens_hash(tmp_path: Path, env: dict[str, str]) -> None:
    accounts = Accounts.open(tmp_path / "accounts.sqlite3", env=env)
    accounts.add_user("ann")
    tokens = [accounts.issue_token("ann", label=f"t{i}").reveal() for i in range(3)]
    accounts.authenticate(tokens[0])
    accounts.revoke_token("ann", accounts.list_tokens("ann")[1].id)

    def only_hashes_in(on_disk: bytes) -> bool:
        hashed = hashlib.sha256(tokens[0].encode()).hexdigest().encode()
        clear = [t.encode() for t in tokens] + [t.removeprefix("sp_").encode() for t in tokens]
        return hashed in on_disk and not any(token in on_disk for token in clear)

    assert only_hashes_in(every_byte_on_disk(tmp_path))  # open: the database and its WAL
    accounts.close()
    assert only_hashes_in(every_byte_on_disk(tmp_path))  # closed: all in the database

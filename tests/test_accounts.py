"""Accounts: SwarmUI's roles and tiers, users, hashed API tokens, encrypted RunPod keys."""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from orchestrator.accounts import (
    PERMISSIONS,
    Accounts,
    Role,
    add_account_commands,
    permissions_of,
    role_has,
    run_account_command,
)
from orchestrator.errors import AccountError, MasterKeyError
from orchestrator.secrets import Secret

KEY = "rpa_SECRET_0123456789abcdef"


def raw_bytes(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file())


def open_accounts(tmp_path: Path, **env: str) -> Accounts:
    return Accounts.open(tmp_path / "accounts.sqlite3", env=env)


def test_roles_follow_swarmuis_tiers() -> None:
    assert permissions_of(Role.OWNER)[0] == "*"
    for permission in PERMISSIONS.values():
        holders = [role for role in Role if role_has(role, permission.id)]
        # every role at or above the permission's default tier, none below
        assert holders == list(Role)[: list(Role).index(permission.default) + 1]
    assert [role_has(r, "use_runpod_serverless") for r in Role] == [True, True, True, False, False]
    assert not role_has(Role.ADMIN, "no_such_permission") and role_has(Role.OWNER, "anything")


def test_users_are_added_renamed_in_role_listed_and_removed(tmp_path: Path) -> None:
    accounts = open_accounts(tmp_path, SWARMPOD_MASTER_KEY=Fernet.generate_key().decode())
    ann = accounts.add_user("ann", Role.POWERUSER)
    assert ann.has("use_runpod_serverless") and not ann.has("manage_users")
    assert accounts.set_role("ann", Role.GUEST).role is Role.GUEST
    accounts.add_user("bob")
    assert [u.name for u in accounts.list_users()] == ["ann", "bob"]
    with pytest.raises(AccountError, match="exists already"):
        accounts.add_user("ann")
    for bad in ("", "a b", "x" * 65, "ann;drop"):
        with pytest.raises(AccountError, match="not allowed"):
            accounts.add_user(bad)
    accounts.remove_user("bob")
    assert accounts.get_user("bob") is None
    with pytest.raises(AccountError, match="no user"):
        accounts.set_role("bob", Role.USER)


def test_tokens_authenticate_are_revocable_and_never_stored_in_clear(tmp_path: Path) -> None:
    accounts = open_accounts(tmp_path, SWARMPOD_MASTER_KEY=Fernet.generate_key().decode())
    accounts.add_user("ann")
    token = accounts.issue_token("ann", label="laptop")
    assert "sp_" not in repr(token)
    user = accounts.authenticate(token.reveal())
    assert user is not None and user.name == "ann"
    assert accounts.authenticate(token.reveal() + "x") is None
    (info,) = accounts.list_tokens("ann")
    assert info.label == "laptop" and info.last_used_at is not None
    assert token.reveal().encode() not in raw_bytes(tmp_path)
    assert accounts.revoke_token("ann", info.id)
    assert accounts.authenticate(token.reveal()) is None


@pytest.mark.anyio
async def test_runpod_keys_are_encrypted_per_user_and_survive_a_restart(tmp_path: Path) -> None:
    env = {"SWARMPOD_MASTER_KEY": Fernet.generate_key().decode()}
    accounts = open_accounts(tmp_path, **env)
    accounts.add_user("ann")
    accounts.add_user("bob")
    assert accounts.runpod_key_status("ann") == "not set"
    accounts.set_runpod_key("ann", Secret(KEY))
    assert accounts.runpod_key_status("ann").startswith("last updated 20")
    assert await accounts.runpod_key("bob") is None  # never another user's key
    accounts.close()
    assert KEY.encode() not in raw_bytes(tmp_path)
    again = open_accounts(tmp_path, **env)
    key = await again.runpod_key("ann")
    assert key is not None and key.reveal() == KEY
    again.set_runpod_key("ann", None)
    assert await again.runpod_key("ann") is None


def test_the_key_file_is_made_0600_and_a_wrong_master_key_fails_at_open(tmp_path: Path) -> None:
    accounts = open_accounts(tmp_path)
    accounts.close()
    key_file = tmp_path / "accounts.sqlite3.key"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert oct((tmp_path / "accounts.sqlite3").stat().st_mode & 0o777) == "0o600"
    open_accounts(tmp_path).close()  # the same key file: fine
    wrong = Fernet.generate_key().decode()
    with pytest.raises(MasterKeyError) as refused:
        open_accounts(tmp_path, SWARMPOD_MASTER_KEY=wrong)
    assert refused.value.source == "env SWARMPOD_MASTER_KEY" and wrong not in str(refused.value)
    key_file.write_bytes(Fernet.generate_key())
    with pytest.raises(MasterKeyError, match="does not decrypt"):
        open_accounts(tmp_path)


def test_a_malformed_master_key_is_refused_naming_where_it_came_from(tmp_path: Path) -> None:
    with pytest.raises(MasterKeyError) as refused:
        open_accounts(tmp_path, SWARMPOD_MASTER_KEY="not-a-key")
    assert "SWARMPOD_MASTER_KEY" in str(refused.value) and "not-a-key" not in str(refused.value)


def run_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int, str]:
    parser = argparse.ArgumentParser()
    add_account_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["users", "--db", str(tmp_path / "cli.sqlite3"), *argv])
    code = run_account_command(args)
    return code, capsys.readouterr().out


def test_the_users_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SWARMPOD_MASTER_KEY", Fernet.generate_key().decode())
    assert run_cli(tmp_path, monkeypatch, capsys, "add", "ann", "--role", "poweruser")[0] == 0
    code, out = run_cli(tmp_path, monkeypatch, capsys, "token", "ann")
    token = out.strip()
    assert code == 0 and token.startswith("sp_")
    monkeypatch.setattr(sys, "stdin", io.StringIO(KEY + "\n"))
    assert run_cli(tmp_path, monkeypatch, capsys, "set-key", "ann")[0] == 0
    code, out = run_cli(tmp_path, monkeypatch, capsys, "list")
    assert "ann\tpoweruser\tkey last updated" in out and KEY not in out and token not in out
    code, out = run_cli(tmp_path, monkeypatch, capsys, "key-status", "ann")
    assert out.startswith("last updated")
    assert run_cli(tmp_path, monkeypatch, capsys, "add", "ann")[0] == 2  # exists already
    assert run_cli(tmp_path, monkeypatch, capsys, "role", "ann", "guest")[0] == 0
    assert KEY.encode() not in raw_bytes(tmp_path)
    assert os.environ["SWARMPOD_MASTER_KEY"] not in out

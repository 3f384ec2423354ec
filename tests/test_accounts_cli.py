"""``swarmpod users ...``: users, roles, tokens printed once, RunPod keys read from stdin."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from orchestrator.accounts import Accounts, Role, User
from orchestrator.cli._users import add_account_commands, run_account_command
from orchestrator.secrets import Secret

pytestmark = pytest.mark.anyio

KEY = "rpa_CLI0123456789ABCDEFGHIJKLMNOPQRS"

Run = Callable[..., tuple[int, str, str]]


def command(args: argparse.Namespace) -> int:
    """``run_account_command`` as the ``swarmpod`` process runs it: on a thread of its own,
    with its own event loop (as if no test loop ran)."""
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(run_account_command, args).result()


def parser() -> argparse.ArgumentParser:
    """A top-level parser like swarmpod's, with ``users`` added to its sub-commands."""
    top = argparse.ArgumentParser(prog="swarmpod")
    add_account_commands(top.add_subparsers(dest="command", required=True))
    return top


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "cli.sqlite3"


@pytest.fixture
def run(db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    """``swarmpod users --db DB ARGV...`` with ``stdin``; gives (exit code, stdout, stderr)."""
    monkeypatch.delenv("SWARMPOD_MASTER_KEY", raising=False)

    def run(*argv: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        args = parser().parse_args(["users", "--db", str(db), *argv])
        code = command(args)
        out, err = capsys.readouterr()
        return code, out, err

    return run


@contextlib.asynccontextmanager
async def stored(db: Path) -> AsyncIterator[Accounts]:
    async with await Accounts.open(db, env={}) as accounts:
        yield accounts


async def test_add_list_role_and_remove_users(run: Run, db: Path) -> None:
    assert run("add", "ann", "--role", "poweruser") == (0, "added ann (poweruser)\n", "")
    assert run("add", "bob")[:2] == (0, "added bob (user)\n")
    assert run("role", "bob", "admin")[:2] == (0, "bob is now admin\n")
    code, out, _ = run("list")
    assert code == 0 and out.splitlines() == [
        "NAME\tROLE\tTOKENS\tRUNPOD KEY",
        "ann\tpoweruser\t0\tnot set",
        "bob\tadmin\t0\tnot set",
    ]
    assert run("remove", "bob")[0] == 0
    async with stored(db) as accounts:
        assert await accounts.list_users() == [User("ann", Role.POWERUSER)]


def test_refusals_exit_2_with_the_reason_on_stderr(run: Run) -> None:
    run("add", "ann")
    code, out, err = run("add", "ann")
    assert (code, out) == (2, "") and err.startswith("error: The user 'ann' exists already")
    assert run("role", "nobody", "user")[2].startswith("error: There is no user 'nobody'")
    assert run("add", "bad name")[0] == 2
    assert run("remove", "nobody")[0] == 2


def test_a_role_must_be_one_of_swarmuis_roles(run: Run, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["users", "add", "ann", "--role", "superuser"])
    assert "invalid choice: 'superuser'" in capsys.readouterr().err


async def test_a_token_is_printed_once_alone_on_stdout(run: Run, db: Path) -> None:
    run("add", "ann")
    code, out, err = run("token", "ann", "--label", "laptop")
    token = out.strip()
    assert code == 0 and out == token + "\n" and token.startswith("sp_")
    assert (out + err).count(token) == 1
    assert err.startswith("This token cannot be shown again")
    async with stored(db) as accounts:
        (info,) = await accounts.list_tokens("ann")
        assert await accounts.authenticate(token) == User("ann", Role.USER)
    assert f"swarmpod users revoke ann {info.id}" in err


def test_token_listings_show_ids_and_dates_never_a_token(run: Run) -> None:
    run("add", "ann")
    token = run("token", "ann", "--label", "laptop")[1].strip()
    code, out, _ = run("tokens", "ann")
    header, line = out.splitlines()
    token_id, created, last_used, label = line.split("\t")
    assert code == 0 and header == "ID\tCREATED (UTC)\tLAST USED (UTC)\tLABEL"
    assert (last_used, label) == ("never", "laptop") and len(created) == len("2026-11-28 07:30")
    assert run("list")[1].splitlines()[1] == "ann\tuser\t1\tnot set"
    assert token not in out and token not in run("list")[1]
    assert run("revoke", "ann", token_id)[:2] == (0, f"revoked token {token_id} of ann\n")
    assert run("tokens", "ann")[1].splitlines() == [header]


def test_revoking_an_unknown_token_is_refused(run: Run) -> None:
    run("add", "ann")
    code, _, err = run("revoke", "ann", "nope")
    assert code == 2 and "ann has no token nope; see their tokens with" in err


async def test_set_key_reads_the_key_from_stdin_and_stores_it_encrypted(run: Run, db: Path) -> None:
    run("add", "ann")
    code, out, err = run("set-key", "ann", stdin=KEY + "\n")
    assert (code, out, err) == (0, "stored the RunPod key of ann, encrypted\n", "")
    async with stored(db) as accounts:
        assert await accounts.runpod_key("ann") == Secret(KEY)
    code, out, _ = run("key-status", "ann")
    assert code == 0 and out.startswith("last updated 20") and KEY not in out
    listing = run("list")[1]
    assert "ann\tuser\t0\tlast updated" in listing and KEY not in listing
    on_disk = b"".join(p.read_bytes() for p in db.parent.iterdir() if p.is_file())
    assert KEY.encode() not in on_disk


async def test_set_key_refuses_a_key_given_on_the_command_line_without_echoing_it(
    run: Run, db: Path
) -> None:
    run("add", "ann")
    code, out, err = run("set-key", "ann", KEY)
    assert code == 2 and "on stdin, not on the command line" in err
    assert KEY not in out + err
    async with stored(db) as accounts:
        assert await accounts.runpod_key("ann") is None


def test_set_key_refuses_an_empty_stdin(run: Run) -> None:
    run("add", "ann")
    code, _, err = run("set-key", "ann", stdin="\n")
    assert code == 2 and "no key on stdin" in err


def test_set_key_refuses_an_unknown_user_before_reading_a_key(run: Run) -> None:
    code, _, err = run("set-key", "nobody", stdin=KEY)
    assert code == 2 and "no user 'nobody'" in err and KEY not in err
    assert sys.stdin.read() == KEY  # never read


async def test_set_key_clear_deletes_the_key(run: Run, db: Path) -> None:
    run("add", "ann")
    run("set-key", "ann", stdin=KEY)
    assert run("set-key", "ann", "--clear")[:2] == (0, "deleted the RunPod key of ann\n")
    assert run("key-status", "ann")[1] == "not set\n"
    async with stored(db) as accounts:
        assert await accounts.runpod_key("ann") is None


def test_db_is_taken_after_the_action_too(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = parser().parse_args(["users", "add", "ann", "--db", str(db)])
    assert command(args) == 0
    args = parser().parse_args(["users", "list", "--db", str(db)])
    assert command(args) == 0
    assert "ann\tuser" in capsys.readouterr().out


def test_the_default_database_is_accounts_sqlite3_in_the_state_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SWARMPOD_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("SWARMPOD_MASTER_KEY", raising=False)
    assert command(parser().parse_args(["users", "add", "ann"])) == 0
    assert (tmp_path / "state" / "accounts.sqlite3").exists()
    assert os.stat(tmp_path / "state" / "accounts.sqlite3.key").st_mode & 0o777 == 0o600


def test_a_wrong_master_key_is_refused_without_showing_it(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    run("add", "ann")
    wrong = Fernet.generate_key().decode()
    monkeypatch.setenv("SWARMPOD_MASTER_KEY", wrong)
    code, out, err = run("list")
    assert code == 2 and out == "" and "does not decrypt this database's keys" in err
    assert wrong not in err


def test_a_file_that_is_not_a_database_is_refused_with_its_path(run: Run, db: Path) -> None:
    db.write_bytes(b"this is not sqlite" * 100)
    code, _, err = run("list")
    assert code == 2 and f"{db} is not a usable SQLite database" in err
    assert "move it aside" in err and db.read_bytes() == b"this is not sqlite" * 100

"""``swarmpod users ...``: add users, set roles, issue and revoke tokens, set RunPod keys.

A RunPod key is read from stdin (without echo on a terminal), never from the command line,
so it does not land in the shell's history or in ``ps``. A token is printed once, alone on
stdout (so it can be piped); the note that it cannot be shown again goes to stderr.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

import anyio

from .._state import default_state_file
from ..accounts import ACCOUNTS_HOLD, Accounts, Role
from ..errors import OrchestratorError, SettingsError
from ..secrets import Secret
from ..service import ServiceConfig
from ..store import DatabaseUrl, opened_store
from ._command import Command, Subparsers

__all__ = ["USERS", "add_account_commands", "default_accounts_file", "run_account_command"]

_ROLES = [role.value for role in Role]


def default_accounts_file() -> Path:
    """``accounts.sqlite3`` in swarmpod's state directory (beside the default state file)."""
    return default_state_file().parent / "accounts.sqlite3"


def add_account_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``users`` and its sub-commands on an argparse ``subparsers`` object.

    ``--db PATH`` (or ``--config`` serve's TOML file) is taken before or after the
    sub-command (``users --db X list`` or ``users list --db X``).
    """
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument(
        "--db",
        type=Path,
        default=argparse.SUPPRESS,
        help="the accounts database (default: accounts.sqlite3 in the state directory)",
    )
    db.add_argument(
        "--config",
        type=Path,
        default=argparse.SUPPRESS,
        help="the TOML file of 'swarmpod serve': the accounts of its [service] database, or "
        "of its state_dir",
    )
    users = subparsers.add_parser(
        "users",
        parents=[db],
        help="manage the service's users, roles, API tokens and RunPod keys",
        description="Manage the users of 'swarmpod serve': roles, API tokens, RunPod keys.",
    )
    actions = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        return actions.add_parser(name, parents=[db], help=help_text, description=help_text)

    add = action("add", "add a user")
    add.add_argument("name")
    add.add_argument("--role", choices=_ROLES, default=Role.USER.value)
    role = action("role", "set a user's role")
    role.add_argument("name")
    role.add_argument("role", choices=_ROLES)
    action("remove", "remove a user, with their tokens and RunPod key").add_argument("name")
    action("list", "list the users, their roles and key status")
    token = action("token", "issue an API token (printed once)")
    token.add_argument("name")
    token.add_argument("--label", default="", help="what the token is for")
    action("tokens", "list a user's tokens (ids and dates, never the tokens)").add_argument("name")
    revoke = action("revoke", "revoke one of a user's tokens")
    revoke.add_argument("name")
    revoke.add_argument("token_id")
    set_key = action("set-key", "set a user's RunPod key, read from stdin")
    set_key.add_argument("name")
    set_key.add_argument("--clear", action="store_true", help="delete the key instead")
    # A key typed after the name would land in the shell history; catch it to say so
    # (argparse's own "unrecognized arguments" error would print it again).
    set_key.add_argument("stray", nargs="*", help=argparse.SUPPRESS)
    action("key-status", "when a user's RunPod key was last set").add_argument("name")


def run_account_command(args: argparse.Namespace) -> int:
    """Run one ``users`` sub-command; 0 when done, 2 when refused (the reason on stderr)."""
    try:
        database, path = _accounts_location(args)
    except OrchestratorError as exc:
        return _refuse(str(exc))
    try:
        return anyio.run(_with_accounts, database, path, args)
    except OrchestratorError as exc:
        return _refuse(str(exc))


async def _with_accounts(database: DatabaseUrl | None, path: Path, args: argparse.Namespace) -> int:
    if database is None:
        async with await Accounts.open(path) as accounts:
            return await _run(accounts, args)
    async with (
        opened_store(database, path, holds=ACCOUNTS_HOLD) as store,
        await Accounts.open(store) as accounts,
    ):
        return await _run(accounts, args)


def _accounts_location(args: argparse.Namespace) -> tuple[DatabaseUrl | None, Path]:
    """``--db``; else the accounts ``--config``'s serve uses (its [service] database, or its
    state_dir's file; ``SWARMPOD_DATABASE_URL`` wins, as for serve); else those of the
    default state directory (or ``SWARMPOD_DATABASE_URL``'s database)."""
    db: Path | None = getattr(args, "db", None)
    config: Path | None = getattr(args, "config", None)
    if db is not None and config is not None:
        raise SettingsError("--db", "give either --db or --config", source="command line")
    if db is not None:
        return None, db
    loaded = ServiceConfig.load(config)
    return loaded.database, loaded.state_dir / "accounts.sqlite3"


async def _run(accounts: Accounts, args: argparse.Namespace) -> int:
    command = args.users_command
    if command == "add":
        user = await accounts.add_user(args.name, Role(args.role))
        print(f"added {user.name} ({user.role})")
    elif command == "role":
        user = await accounts.set_role(args.name, Role(args.role))
        print(f"{user.name} is now {user.role}")
    elif command == "remove":
        await accounts.remove_user(args.name)
        print(f"removed {args.name} with their tokens and RunPod key")
    elif command == "list":
        print("NAME\tROLE\tTOKENS\tRUNPOD KEY")
        for user in await accounts.list_users():
            tokens = len(await accounts.list_tokens(user.name))
            status = await accounts.runpod_key_status(user.name)
            print(f"{user.name}\t{user.role}\t{tokens}\t{status}")
    elif command == "token":
        token = await accounts.issue_token(args.name, label=args.label)
        token_id = (await accounts.list_tokens(args.name))[-1].id
        print(token.reveal())
        print(
            f"This token cannot be shown again: swarmpod keeps only its hash. Its id is "
            f"{token_id} (revoke it with: swarmpod users revoke {args.name} {token_id}).",
            file=sys.stderr,
        )
    elif command == "tokens":
        print("ID\tCREATED (UTC)\tLAST USED (UTC)\tLABEL")
        for info in await accounts.list_tokens(args.name):
            print(f"{info.id}\t{info.created_at}\t{info.last_used_at or 'never'}\t{info.label}")
    elif command == "revoke":
        if not await accounts.revoke_token(args.name, args.token_id):
            return _refuse(
                f"{args.name} has no token {args.token_id}; see their tokens with: "
                f"swarmpod users tokens {args.name}"
            )
        print(f"revoked token {args.token_id} of {args.name}")
    elif command == "set-key":
        return await _set_key(accounts, args)
    elif command == "key-status":
        print(await accounts.runpod_key_status(args.name))
    return 0


async def _set_key(accounts: Accounts, args: argparse.Namespace) -> int:
    if args.stray:
        return _refuse(
            "give the RunPod key on stdin, not on the command line (it would land in the "
            "shell history: remove it from there, and consider rotating the key). E.g.: "
            f"swarmpod users set-key {args.name} < keyfile"
        )
    if args.clear:
        await accounts.set_runpod_key(args.name, None)
        print(f"deleted the RunPod key of {args.name}")
        return 0
    await accounts.runpod_key_status(args.name)  # refuses an unknown user before asking for a key
    key = (await anyio.to_thread.run_sync(_read_key, args.name)).strip()
    if not key:
        return _refuse("no key on stdin; pipe it in, or use --clear to delete the key")
    await accounts.set_runpod_key(args.name, Secret(key))
    print(f"stored the RunPod key of {args.name}, encrypted")
    return 0


def _read_key(name: str) -> str:
    if sys.stdin.isatty():
        return getpass.getpass(f"RunPod API key for {name} (not shown): ")
    return sys.stdin.readline()


def _refuse(reason: str) -> int:
    print(f"error: {reason}", file=sys.stderr)
    return 2


def _declare(commands: Subparsers, traced: argparse.ArgumentParser) -> None:
    add_account_commands(commands)


USERS = Command("users", _declare, run_account_command)
"""``swarmpod users``."""

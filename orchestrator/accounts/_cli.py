"""``swarmpod users ...``: add users, set roles, issue tokens, set RunPod keys (from stdin)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .._state import default_state_file
from ..errors import OrchestratorError
from ..secrets import Secret
from ._roles import Role
from ._store import Accounts

__all__ = ["add_account_commands", "run_account_command"]


def add_account_commands(subparsers: Any) -> None:
    """Register ``users`` and its sub-commands on ``subparsers`` (argparse)."""
    users = subparsers.add_parser("users", help="manage the service's users, tokens and keys")
    users.add_argument(
        "--db", type=Path, help="accounts database (default: accounts.sqlite3 in the state dir)"
    )
    actions = users.add_subparsers(dest="users_command", required=True)
    add = actions.add_parser("add", help="add a user")
    add.add_argument("name")
    add.add_argument("--role", choices=[r.value for r in Role], default=Role.USER.value)
    role = actions.add_parser("role", help="set a user's role")
    role.add_argument("name")
    role.add_argument("role", choices=[r.value for r in Role])
    actions.add_parser("remove", help="remove a user").add_argument("name")
    actions.add_parser("list", help="list the users")
    token = actions.add_parser("token", help="issue an API token (shown once)")
    token.add_argument("name")
    token.add_argument("--label", default="")
    actions.add_parser("tokens", help="list a user's tokens").add_argument("name")
    revoke = actions.add_parser("revoke", help="revoke a token")
    revoke.add_argument("name")
    revoke.add_argument("token_id")
    set_key = actions.add_parser("set-key", help="set a user's RunPod key, read from stdin")
    set_key.add_argument("name")
    set_key.add_argument("--clear", action="store_true", help="delete the key instead")
    actions.add_parser("key-status", help="when a user's key was set").add_argument("name")


def run_account_command(args: argparse.Namespace) -> int:
    """Run one ``users`` sub-command; 0 on success, 2 on a refused request."""
    path = args.db or default_state_file().parent / "accounts.sqlite3"
    try:
        accounts = Accounts.open(path)
    except OrchestratorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return _run(accounts, args)
    except OrchestratorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        accounts.close()


def _run(accounts: Accounts, args: argparse.Namespace) -> int:
    command = args.users_command
    if command == "add":
        user = accounts.add_user(args.name, Role(args.role))
        print(f"added {user.name} ({user.role})")
    elif command == "role":
        user = accounts.set_role(args.name, Role(args.role))
        print(f"{user.name} is now {user.role}")
    elif command == "remove":
        accounts.remove_user(args.name)
        print(f"removed {args.name}")
    elif command == "list":
        for user in accounts.list_users():
            print(f"{user.name}\t{user.role}\tkey {accounts.runpod_key_status(user.name)}")
    elif command == "token":
        token = accounts.issue_token(args.name, label=args.label)
        print(token.reveal())
        print("(shown once: it is stored only as a hash)", file=sys.stderr)
    elif command == "tokens":
        for info in accounts.list_tokens(args.name):
            print(f"{info.id}\t{info.label}\tcreated {info.created_at}\tused {info.last_used_at}")
    elif command == "revoke":
        if not accounts.revoke_token(args.name, args.token_id):
            print(f"error: {args.name} has no token {args.token_id}", file=sys.stderr)
            return 2
        print(f"revoked {args.token_id}")
    elif command == "set-key":
        if args.clear:
            accounts.set_runpod_key(args.name, None)
            print(f"deleted the RunPod key of {args.name}")
        else:
            key = sys.stdin.readline().strip()
            if not key or any(ch.isspace() for ch in key):
                print("error: give the key on stdin, one word", file=sys.stderr)
                return 2
            accounts.set_runpod_key(args.name, Secret(key))
            print(f"stored the RunPod key of {args.name} (encrypted)")
    elif command == "key-status":
        print(accounts.runpod_key_status(args.name))
    return 0

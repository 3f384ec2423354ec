"""Accounts: users with SwarmUI's roles and permissions, API tokens (hashed), and per-user
RunPod keys encrypted at rest, in one SQLite file."""

from ._cli import add_account_commands as add_account_commands
from ._cli import run_account_command as run_account_command
from ._roles import PERMISSIONS as PERMISSIONS
from ._roles import Permission as Permission
from ._roles import Role as Role
from ._roles import User as User
from ._roles import permissions_of as permissions_of
from ._roles import role_has as role_has
from ._store import Accounts as Accounts
from ._store import TokenInfo as TokenInfo

__all__ = [
    "PERMISSIONS",
    "Accounts",
    "Permission",
    "Role",
    "TokenInfo",
    "User",
    "add_account_commands",
    "permissions_of",
    "role_has",
    "run_account_command",
]

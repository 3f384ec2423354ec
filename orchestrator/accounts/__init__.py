"""Accounts of ``swarmpod serve``: users with SwarmUI's roles and permissions, API tokens, and
per-user RunPod keys, in one SQLite file (mode 0600).

- ``_roles``: :class:`Role`, :class:`Permission`, :data:`PERMISSIONS`, :func:`role_has`,
  :func:`permissions_of`, :class:`User` (SwarmUI's tiers, specs/swarmui-api.md §7).
- ``_tokens``: API tokens, random and stored only as their SHA-256 (:class:`TokenInfo`).
- ``_master_key``: the Fernet master key (``SWARMPOD_MASTER_KEY`` or a 0600 key file) and
  the canary that refuses a wrong key at start.
- ``_database``: the SQLite file, created 0600, and its schema.
- ``_store``: :class:`Accounts`, which ties them together (and is a ``KeyProvider``).
- ``_cli``: ``swarmpod users ...`` (:func:`add_account_commands`, :func:`run_account_command`).

>>> from orchestrator.accounts import Role, role_has
>>> role_has(Role.POWERUSER, "use_runpod_serverless"), role_has(Role.USER, "use_runpod_serverless")
(True, False)
"""

from ._cli import add_account_commands as add_account_commands
from ._cli import run_account_command as run_account_command
from ._roles import PERMISSIONS as PERMISSIONS
from ._roles import Permission as Permission
from ._roles import Role as Role
from ._roles import User as User
from ._roles import permissions_of as permissions_of
from ._roles import role_has as role_has
from ._store import Accounts as Accounts
from ._tokens import TokenInfo as TokenInfo

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

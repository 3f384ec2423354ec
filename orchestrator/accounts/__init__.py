"""Accounts of ``swarmpod serve``: users with SwarmUI's roles and permissions, API tokens, and
per-user RunPod keys, in their own SQLite file (mode 0600) or the shared PostgreSQL database.

- ``_roles``: :class:`Role`, :class:`Permission`, :data:`PERMISSIONS`, :func:`role_has`,
  :func:`permissions_of`, :class:`User` (SwarmUI's tiers, specs/swarmui-api.md §7).
- ``_tokens``: API tokens, random and stored only as their SHA-256 (:class:`TokenInfo`).
- ``_master_key``: the Fernet master key (``SWARMPOD_MASTER_KEY`` or a 0600 key file) and
  the canary that refuses a wrong key at start.
- ``_database``: where they live, their tables migrated (:data:`ACCOUNTS_HOLD` names what a
  store that cannot be used would lose).
- ``_store``: :class:`Accounts`, which ties them together (and is a ``KeyProvider``).

The ``swarmpod users`` command that manages them is the command line's (``orchestrator.cli``).

>>> from orchestrator.accounts import Role, role_has
>>> role_has(Role.POWERUSER, "use_runpod_serverless"), role_has(Role.USER, "use_runpod_serverless")
(True, False)
"""

from ._database import ACCOUNTS_HOLD as ACCOUNTS_HOLD
from ._roles import PERMISSIONS as PERMISSIONS
from ._roles import Permission as Permission
from ._roles import Role as Role
from ._roles import User as User
from ._roles import permissions_of as permissions_of
from ._roles import role_has as role_has
from ._store import Accounts as Accounts
from ._tokens import TokenInfo as TokenInfo

__all__ = [
    "ACCOUNTS_HOLD",
    "PERMISSIONS",
    "Accounts",
    "Permission",
    "Role",
    "TokenInfo",
    "User",
    "permissions_of",
    "role_has",
]

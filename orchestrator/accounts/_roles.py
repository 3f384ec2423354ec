"""Roles and permissions with SwarmUI's tier semantics (specs/swarmui-api.md §7).

SwarmUI's ``PermissionDefault`` tiers, most powerful first: ``NOBODY`` (owner only) = 0,
``ADMINS`` = 1, ``POWERUSERS`` = 2, ``USER`` = 3, ``GUEST`` = 4. A role at tier *t* has every
permission whose default tier is *t* or weaker; the owner has ``*`` (every permission, even
ones swarmpod does not know).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

__all__ = ["PERMISSIONS", "Permission", "Role", "User", "permissions_of", "role_has"]


class Role(enum.StrEnum):
    """The built-in roles, most powerful first (SwarmUI's tiers ``NOBODY`` ... ``GUEST``).

    >>> [str(role) for role in Role]
    ['owner', 'admin', 'poweruser', 'user', 'guest']
    """

    OWNER = "owner"
    ADMIN = "admin"
    POWERUSER = "poweruser"
    USER = "user"
    GUEST = "guest"


_TIER: Final[Mapping[Role, int]] = {role: tier for tier, role in enumerate(Role)}
"""SwarmUI's ``PermissionDefault`` number of each role (``OWNER`` is ``NOBODY`` = 0)."""


@dataclass(frozen=True)
class Permission:
    """One permission flag, as SwarmUI's ``PermInfo``.

    Attributes:
        id: its id (``use_runpod_serverless``).
        display_name: its name for humans.
        default: the least powerful role that has it by default (``Role.OWNER`` stands for
            SwarmUI's ``NOBODY``: only the owner, through ``*``).
        group: SwarmUI's permission group, where swarmpod knows it.
    """

    id: str
    display_name: str
    default: Role
    group: str = ""


PERMISSIONS: Final[Mapping[str, Permission]] = MappingProxyType(
    {
        p.id: p
        for p in (
            Permission(
                "use_runpod_serverless",
                "Use RunPod Serverless backends",
                Role.POWERUSER,
                group="RunPodServerless",
            ),
            Permission("basic_image_generation", "Basic image generation", Role.USER),
            Permission("fundamental_generate_tab_access", "Generate tab access", Role.GUEST),
            Permission("fundamental_model_access", "Model list access", Role.GUEST),
            Permission("load_models_now", "Load models now", Role.POWERUSER),
            Permission("view_backends_list", "View the backends list", Role.POWERUSER),
            Permission("control_mem_clean", "Free backend memory", Role.POWERUSER),
            Permission("edit_user_settings", "Edit own user settings and API keys", Role.USER),
            Permission("model_params", "Choose the model of a generation", Role.USER),
            Permission("param_backend_id", "Pick the exact backend", Role.POWERUSER),
            Permission("param_backend_type", "Pick the backend type", Role.POWERUSER),
            Permission("control_model_refresh", "Refresh the model lists", Role.ADMIN),
            Permission("manage_users", "Manage users (and impersonate them)", Role.ADMIN),
            Permission("shutdown", "Shut the server down", Role.OWNER),
            Permission("automated_control", "Automated control of the server", Role.OWNER),
        )
    }
)
"""Every permission swarmpod knows, by id, with SwarmUI's default tiers (spec §7, §8.1)."""


def role_has(role: Role, permission: str) -> bool:
    """Whether ``role`` has ``permission`` by SwarmUI's tiers.

    The owner has every permission (SwarmUI's ``*``); any other role has none that swarmpod
    does not know.

    >>> [role_has(role, "use_runpod_serverless") for role in Role]
    [True, True, True, False, False]
    >>> role_has(Role.OWNER, "anything"), role_has(Role.ADMIN, "anything")
    (True, False)
    """
    if Role(role) is Role.OWNER:
        return True
    known = PERMISSIONS.get(permission)
    return known is not None and _TIER[Role(role)] <= _TIER[known.default]


def permissions_of(role: Role) -> tuple[str, ...]:
    """The flattened permission ids of ``role``, as SwarmUI's ``GetNewSession`` lists them.

    The owner's list starts with ``*`` and then names every permission.

    >>> permissions_of(Role.GUEST)
    ('fundamental_generate_tab_access', 'fundamental_model_access')
    >>> permissions_of(Role.OWNER)[:2]
    ('*', 'use_runpod_serverless')
    """
    ids = tuple(pid for pid in PERMISSIONS if role_has(role, pid))
    return ("*", *ids) if Role(role) is Role.OWNER else ids


@dataclass(frozen=True)
class User:
    """A swarmpod user (its tokens and key are kept by :class:`Accounts`, never here).

    Attributes:
        name: the user name (1-64 of ``A-Za-z0-9_.@-``).
        role: the user's role.
    """

    name: str
    role: Role

    def has(self, permission: str) -> bool:
        """Whether the user's role has ``permission`` (see :func:`role_has`).

        >>> User("ann", Role.USER).has("basic_image_generation")
        True
        """
        return role_has(self.role, permission)

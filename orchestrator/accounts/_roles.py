"""Roles and permissions with SwarmUI's tier semantics (specs/swarmui-api.md §7)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

__all__ = ["PERMISSIONS", "Permission", "Role", "User", "permissions_of", "role_has"]


class Role(enum.StrEnum):
    """The built-in roles, most powerful first (SwarmUI's tiers: owner ... guest)."""

    OWNER = "owner"
    ADMIN = "admin"
    POWERUSER = "poweruser"
    USER = "user"
    GUEST = "guest"


_TIER: Final = {role: index for index, role in enumerate(Role)}


@dataclass(frozen=True)
class Permission:
    """One permission flag.

    Attributes:
        id: its id (``use_runpod_serverless``).
        display_name: its name for humans.
        default: the least role that has it by default (``OWNER`` = SwarmUI's NOBODY).
    """

    id: str
    display_name: str
    default: Role


PERMISSIONS: Final[Mapping[str, Permission]] = {
    p.id: p
    for p in (
        Permission("use_runpod_serverless", "Use RunPod Serverless backends", Role.POWERUSER),
        Permission("basic_image_generation", "Basic image generation", Role.USER),
        Permission("fundamental_generate_tab_access", "Generate tab access", Role.GUEST),
        Permission("fundamental_model_access", "Model list access", Role.GUEST),
        Permission("load_models_now", "Load models now", Role.POWERUSER),
        Permission("view_backends_list", "View the backends list", Role.POWERUSER),
        Permission("control_mem_clean", "Free backend memory", Role.POWERUSER),
        Permission("edit_user_settings", "Edit own user settings and keys", Role.USER),
        Permission("control_model_refresh", "Refresh the model lists", Role.ADMIN),
        Permission("manage_users", "Manage users", Role.ADMIN),
        Permission("shutdown", "Shut the server down", Role.OWNER),
    )
}
"""Every permission swarmpod checks, by id."""


def role_has(role: Role, permission: str) -> bool:
    """Whether ``role`` has ``permission`` (the owner has every one, as SwarmUI's ``*``).

    >>> [role_has(role, "use_runpod_serverless") for role in (Role.POWERUSER, Role.USER)]
    [True, False]
    """
    if role is Role.OWNER:
        return True
    known = PERMISSIONS.get(permission)
    return known is not None and _TIER[role] <= _TIER[known.default]


def permissions_of(role: Role) -> tuple[str, ...]:
    """The flattened permission ids of ``role`` (SwarmUI's ``GetNewSession`` list)."""
    ids = tuple(pid for pid in PERMISSIONS if role_has(role, pid))
    return ("*", *ids) if role is Role.OWNER else ids


@dataclass(frozen=True)
class User:
    """A swarmpod user.

    Attributes:
        name: the user name.
        role: the user's role.
    """

    name: str
    role: Role

    def has(self, permission: str) -> bool:
        """Whether the user's role has ``permission``."""
        return role_has(self.role, permission)

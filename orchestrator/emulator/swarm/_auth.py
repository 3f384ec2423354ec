"""Permissions, roles and login tokens as SwarmUI has them (specs/swarmui-api.md §2.4, §7)."""

from __future__ import annotations

import re
import secrets
from typing import Final

__all__ = [
    "OWNER",
    "PERMISSION_TIERS",
    "ROLES",
    "ROUTE_PERMISSIONS",
    "has_permission",
    "make_token",
    "role_permissions",
    "token_user",
]

OWNER: Final = "owner"
# PermissionDefault tiers (§7): a role gets every permission whose default tier is at or below it.
_NOBODY, _ADMINS, _POWERUSERS, _USER, _GUEST = range(5)
ROLES: Final = {
    "owner": _NOBODY,
    "admin": _ADMINS,
    "poweruser": _POWERUSERS,
    "user": _USER,
    "guest": _GUEST,
}
"""Built-in role -> the lowest PermissionDefault tier it holds (``owner`` also holds ``*``)."""

PERMISSION_TIERS: Final = {
    "fundamental_generate_tab_access": _GUEST,
    "fundamental_model_access": _GUEST,
    "read_user_settings": _GUEST,
    "basic_image_generation": _USER,
    "model_params": _USER,
    "param_controlnet": _USER,
    "param_video": _USER,
    "edit_user_settings": _USER,
    "load_models_now": _POWERUSERS,
    "view_backends_list": _POWERUSERS,
    "control_mem_clean": _POWERUSERS,
    "param_backend_id": _POWERUSERS,
    "param_backend_type": _POWERUSERS,
    "use_runpod_serverless": _POWERUSERS,
    "restart_backends": _ADMINS,
    "manage_users": _ADMINS,
    "view_others_outputs": _ADMINS,
    "shutdown": _NOBODY,
    "automated_control": _NOBODY,
}
"""The permissions the fake knows, with their PermissionDefault tier."""

ROUTE_PERMISSIONS: Final = {
    "getcurrentstatus": "fundamental_generate_tab_access",
    "listt2iparams": "fundamental_generate_tab_access",
    "triggerrefresh": "fundamental_generate_tab_access",
    "interruptall": "basic_image_generation",
    "generatetext2image": "basic_image_generation",
    "generatetext2imagews": "basic_image_generation",
    "listmodels": "fundamental_model_access",
    "describemodel": "fundamental_model_access",
    "listloadedmodels": "fundamental_model_access",
    "selectmodel": "load_models_now",
    "listbackends": "view_backends_list",
    "freebackendmemory": "control_mem_clean",
    "setapikey": "edit_user_settings",
    "getapikeystatus": "read_user_settings",
    "getstatus": "use_runpod_serverless",
    "refreshmodels": "use_runpod_serverless",
}
"""Lowercased route name -> the permission SwarmUI registers it with (§7, §8.1)."""

_EXTENSION_ONLY: Final = frozenset({"use_runpod_serverless"})
_TOKEN: Final = re.compile(r"([0-9a-f]+)\.([^.]+)\.([^.]+)")


def role_permissions(role: str, *, runpod_extension: bool = False) -> tuple[str, ...]:
    """The flattened permission flags of a built-in role (``owner`` has ``*`` first).

    >>> role_permissions("guest")
    ('fundamental_generate_tab_access', 'fundamental_model_access', 'read_user_settings')
    >>> role_permissions("owner")[0]
    '*'

    Raises:
        ValueError: ``role`` is not a built-in role.
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; built-in roles: {', '.join(ROLES)}")
    tier = ROLES[role]
    flags = tuple(
        permission
        for permission, default in PERMISSION_TIERS.items()
        if default >= tier and (runpod_extension or permission not in _EXTENSION_ONLY)
    )
    return ("*", *flags) if role == OWNER else flags


def has_permission(flags: tuple[str, ...], permission: str) -> bool:
    """SwarmUI's check: the flags contain the permission or ``*``."""
    return "*" in flags or permission in flags


def make_token(user_id: str) -> str:
    """A new ``swarm_token`` login cookie value: ``hex(utf8(user)).tokenId.secret``."""
    return f"{user_id.encode().hex()}.{secrets.token_hex(8)}.{secrets.token_hex(16)}"


def token_user(token: str) -> str | None:
    """The user a well-formed token names (10..1000 chars, three parts), else None.

    >>> token_user(make_token("alice"))
    'alice'
    >>> token_user("nonsense") is None
    True
    """
    match = _TOKEN.fullmatch(token)
    if not 10 <= len(token) <= 1000 or match is None or len(match.group(1)) % 2:
        return None
    try:
        return bytes.fromhex(match.group(1)).decode()
    except UnicodeDecodeError:
        return None

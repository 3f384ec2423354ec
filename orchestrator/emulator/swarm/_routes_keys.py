"""Upstream API key routes: ``SetAPIKey``, ``GetAPIKeyStatus`` (specs/swarmui-api.md §7).

Keys are kept per user and key type; the status only ever says when a key was set.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from ._args import RouteError, arg_str
from ._pipeline import Handler
from ._state import Session, SwarmState

__all__ = ["KEY_ROUTES"]

# What C# prints for the HashSet<string> in SetAPIKey's error (§7: not the offending key).
_KEY_TYPES_TO_STRING: Final = "System.Collections.Generic.HashSet`1[System.String]"


async def _set_api_key(
    state: SwarmState, session: Session | None, body: dict[str, Any], request: web.Request
) -> dict[str, Any]:
    assert session is not None
    key_type = arg_str(body, "keyType")
    key = arg_str(body, "key")
    accepted = set(state.config.api_key_types)
    if state.config.runpod_extension:
        accepted.add("runpod_api")
    if key_type not in accepted:
        raise RouteError(f"Invalid key type '{_KEY_TYPES_TO_STRING}'.")
    slot = (session.user_id, key_type)
    if key == "none":
        state.api_keys.pop(slot, None)
    else:
        state.api_keys[slot] = (key, f"{state.now():%Y-%m-%d %H:%M}")
    return {"success": True}


async def _get_api_key_status(
    state: SwarmState, session: Session | None, body: dict[str, Any], request: web.Request
) -> dict[str, Any]:
    assert session is not None
    key_type = arg_str(body, "keyType")
    stored = state.api_keys.get((session.user_id, key_type))
    return {"status": "not set" if stored is None else f"last updated {stored[1]}"}


KEY_ROUTES: Final[dict[str, Handler]] = {
    "setapikey": _set_api_key,
    "getapikeystatus": _get_api_key_status,
}
"""The API key routes by lower-case name."""

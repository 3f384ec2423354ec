"""Session routes: ``GetNewSession``, ``GetCurrentStatus``, ``InterruptAll`` (§2.1, §3.3, §3.4)."""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from ._args import RouteError, arg_bool
from ._pipeline import Handler, login_user
from ._state import Session, SwarmState

__all__ = ["SESSION_ROUTES"]

_VERSION: Final = "0.9.7.0.GIT-swarmpod"


async def _get_new_session(
    state: SwarmState, _: Session | None, body: dict[str, Any], request: web.Request
) -> dict[str, Any]:
    user_id = login_user(state, request)
    if user_id is None:
        return {"error": "Invalid or unauthorized."}
    if body.get("impersonateUser"):
        raise RouteError(
            "You do not have permission to impersonate other users.", "bad_impersonate"
        )
    session = state.new_session(user_id)
    return {
        "session_id": session.id,
        "user_id": session.user_id,
        "output_append_user": True,
        "version": _VERSION,
        "server_id": state.server_id,
        "permissions": list(state.permissions),
    }


async def _get_current_status(
    state: SwarmState, session: Session | None, body: dict[str, Any], request: web.Request
) -> dict[str, Any]:
    return state.status_object(session)


async def _interrupt_all(
    state: SwarmState, session: Session | None, body: dict[str, Any], request: web.Request
) -> dict[str, Any]:
    assert session is not None
    others = arg_bool(body, "other_sessions", False)
    for generation in list(state.in_flight):
        mine = generation.session is session
        if mine or (others and generation.session.user_id == session.user_id):
            generation.interrupt()
    return {"success": True}


SESSION_ROUTES: Final[dict[str, Handler]] = {
    "getnewsession": _get_new_session,
    "getcurrentstatus": _get_current_status,
    "interruptall": _interrupt_all,
}
"""The session routes by lower-case name."""

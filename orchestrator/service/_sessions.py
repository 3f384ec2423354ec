"""SwarmUI sessions of the facade: which user a ``session_id`` belongs to, and its generations.

Sessions live in memory, as on a fresh SwarmUI worker: after a restart every old id answers
``invalid_session_id`` and clients get a new one (specs/swarmui-api.md §2.3).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import anyio

__all__ = ["Session", "SessionStore"]


@dataclass(eq=False)
class Session:
    """One session: its id, its user, and the generations it runs now.

    Attributes:
        id: 40 lowercase hex characters, as SwarmUI makes them.
        user: the user it belongs to.
        running: cancel scopes of its generations in flight (``InterruptAll`` cancels them).
        selected_model: the model ``SelectModel`` chose last, if any.
    """

    id: str
    user: str
    running: set[anyio.CancelScope] = field(default_factory=set)
    selected_model: str | None = None

    def __repr__(self) -> str:
        return f"Session(user={self.user!r}, running={len(self.running)})"

    def interrupt(self) -> int:
        """Cancel every generation of the session; returns how many."""
        scopes = list(self.running)
        for scope in scopes:
            scope.cancel()
        return len(scopes)


class SessionStore:
    """The live sessions, by id."""

    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def new(self, user: str) -> Session:
        """A new session for ``user``."""
        session = Session(secrets.token_hex(20), user)
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str, user: str) -> Session | None:
        """The session ``session_id`` if it exists and belongs to ``user``."""
        session = self._sessions.get(session_id)
        return session if session is not None and session.user == user else None

    def of_user(self, user: str) -> list[Session]:
        """Every session of ``user``."""
        return [session for session in self._sessions.values() if session.user == user]

"""SwarmUI sessions of the facade: which user a ``session_id`` belongs to, and its generations.

Sessions live in memory, as on a fresh SwarmUI worker: after a restart every old id answers
``invalid_session_id`` and clients get a new one (specs/swarmui-api.md §2.3). They end as
SwarmUI's do, after ``MaxSessionAge`` (31 days) without use (``SessionHandler.cs``; SwarmUI
sweeps its stored sessions at start, swarmpod keeps them in memory and sweeps as it goes).
SwarmUI has no limit per user; swarmpod keeps at most :data:`MAX_SESSIONS_PER_USER` per user,
so a client calling ``GetNewSession`` in a loop cannot grow the service's memory: the user's
least recently used idle session makes room (its next call gets ``invalid_session_id`` and a
SwarmUI client renews it); when all of them run generations, the new one is refused.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import anyio

from ._envelope import ApiRefusalError, failure

__all__ = ["MAX_SESSIONS_PER_USER", "MAX_SESSION_IDLE_S", "Session", "SessionStore"]

MAX_SESSION_IDLE_S: Final = 31 * 24 * 3600.0
"""A session unused this long ends (SwarmUI's ``MaxSessionAge``, 31 days)."""

MAX_SESSIONS_PER_USER: Final = 100
"""The most sessions one user keeps at once."""

_SWEEP_EVERY_S: Final = 3600.0


@dataclass(eq=False)
class Session:
    """One session: its id, its user, and the generations it runs now.

    Attributes:
        id: 40 lowercase hex characters, as SwarmUI makes them.
        user: the user it belongs to.
        last_used: when it was made or last used (event-loop clock).
        running: cancel scopes of its generations in flight (``InterruptAll`` cancels them).
        selected_model: the model ``SelectModel`` chose last, if any.
    """

    id: str
    user: str
    last_used: float = 0.0
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
    """The live sessions, by id, each user's in order of last use.

    >>> now = [0.0]
    >>> store = SessionStore(max_per_user=2, clock=lambda: now[0])
    >>> first, second = store.new("ann"), store.new("ann")
    >>> third = store.new("ann")  # the least recently used idle one makes room
    >>> store.get(first.id, "ann") is None, store.get(third.id, "ann") is third
    (True, True)
    >>> now[0] += MAX_SESSION_IDLE_S + 1  # 31 days unused
    >>> store.get(third.id, "ann") is None, len(store)
    (True, 0)

    Args:
        max_idle_s: a session unused this long ends.
        max_per_user: the most sessions a user keeps.
        clock: the current time in seconds (default: the event loop's).
    """

    def __init__(
        self,
        *,
        max_idle_s: float = MAX_SESSION_IDLE_S,
        max_per_user: int = MAX_SESSIONS_PER_USER,
        clock: Callable[[], float] = anyio.current_time,
    ) -> None:
        self.max_idle_s = max_idle_s
        self.max_per_user = max_per_user
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._by_user: dict[str, OrderedDict[str, Session]] = {}
        self._swept_at: float | None = None

    def __len__(self) -> int:
        self._sweep()
        return len(self._sessions)

    def __repr__(self) -> str:
        return f"SessionStore(sessions={len(self._sessions)}, users={len(self._by_user)})"

    def new(self, user: str) -> Session:
        """A new session for ``user``.

        Raises:
            ApiRefusalError: ``user`` holds :attr:`max_per_user` sessions that all run
                generations (SwarmUI's text for a user who may not create sessions).
        """
        self._sweep()
        own = self._by_user.setdefault(user, OrderedDict())
        if len(own) >= self.max_per_user:
            idle = next((s for s in own.values() if not s.running), None)
            if idle is None:
                raise self._refused(user)
            self._drop(idle)
            own = self._by_user.setdefault(user, OrderedDict())
        session = Session(secrets.token_hex(20), user, last_used=self._clock())
        self._sessions[session.id] = session
        own[session.id] = session
        return session

    def get(self, session_id: str, user: str) -> Session | None:
        """The session ``session_id`` if it exists, belongs to ``user`` and has not expired;
        using it makes it the user's most recent."""
        session = self._sessions.get(session_id)
        if session is None or session.user != user:
            return None
        now = self._clock()
        if self._expired(session, now):
            self._drop(session)
            return None
        session.last_used = now
        self._by_user[user].move_to_end(session.id)
        return session

    def of_user(self, user: str) -> list[Session]:
        """Every live session of ``user``."""
        self._sweep()
        return list(self._by_user.get(user, {}).values())

    def _expired(self, session: Session, now: float) -> bool:
        return not session.running and now - session.last_used >= self.max_idle_s

    def _drop(self, session: Session) -> None:
        self._sessions.pop(session.id, None)
        own = self._by_user.get(session.user)
        if own is not None:
            own.pop(session.id, None)
            if not own:
                del self._by_user[session.user]

    def _sweep(self) -> None:
        """Drop expired sessions, at most once per :data:`_SWEEP_EVERY_S` (each user's are in
        order of last use, so each user costs one look past the last expired one)."""
        now = self._clock()
        if self._swept_at is not None and now - self._swept_at < _SWEEP_EVERY_S:
            return
        self._swept_at = now
        for own in list(self._by_user.values()):
            for session in list(own.values()):
                if now - session.last_used < self.max_idle_s:
                    break
                if self._expired(session, now):
                    self._drop(session)

    @staticmethod
    def _refused(user: str) -> ApiRefusalError:
        return failure(f"User '{user}' may not create new sessions currently.")

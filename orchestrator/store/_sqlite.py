"""The SQLite store: one file (created 0600, WAL), the embedded default; no server.

The file is opened by :func:`~orchestrator._state.connect_private` (SQLite's descriptor is the
only one ever opened on it; an unusable file raises StateFileError and is left untouched).
Calls run at once on the event loop's thread, as SQLite calls always did here: a local file,
and no task switch inside a call or a transaction, so a transaction is never interleaved
with another task's statements.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

from .._state import STATE_FILE_HOLDS, connect_private
from ..errors import DatabaseError
from ._dialects import SQLITE
from ._interface import Params, Row, Transaction

__all__ = ["SqliteStore"]

_OPEN_HERE: set[str] = set()
"""Replica ids of the SQLite stores open in this process (what they own is alive)."""


class SqliteStore:
    """swarmpod's state in one SQLite file (:class:`~orchestrator.store.StateStore`).

    >>> import anyio
    >>> async def demo() -> list[tuple[str]]:
    ...     store = SqliteStore(":memory:")
    ...     await store.execute("CREATE TABLE notes (text TEXT)")
    ...     async with store.transaction() as tx:
    ...         await tx.execute("INSERT INTO notes VALUES (?)", ("kept",))
    ...     rows = await store.fetchall("SELECT text FROM notes")
    ...     await store.close()
    ...     return rows
    >>> anyio.run(demo)
    [('kept',)]

    Args:
        path: the file (created 0600 with its folders), or ``":memory:"``.
        holds: what the file holds, for the message when it is unusable.

    Raises:
        StateFileError: the file is not a database, is damaged, or cannot be opened or
            written; it is left as it was.
    """

    dialect: Final = SQLITE
    shared: Final = False

    def __init__(self, path: str | os.PathLike[str], *, holds: str = STATE_FILE_HOLDS) -> None:
        self.path = os.fspath(path)
        self.description = f"SQLite {self.path}"
        self.replica_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._db = connect_private(self.path, holds=holds)
        try:
            if self.path != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")  # readers while another writes
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA secure_delete=ON")  # what is deleted is zeroed
        except sqlite3.Error as exc:
            self._db.close()
            raise self._failed(exc) from None
        self._in_transaction = False
        self._closed = False
        _OPEN_HERE.add(self.replica_id)

    def __repr__(self) -> str:
        return f"SqliteStore({self.path!r})"

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement (committed at once outside a transaction); rows changed."""
        return self._run(sql, params).rowcount

    async def insert(self, sql: str, params: Params = ()) -> int:
        """Run one ``INSERT``; the new row's id."""
        row_id = self._run(sql, params).lastrowid
        assert row_id is not None
        return row_id

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """The first row of a query, or None."""
        row = self._run(sql, params).fetchone()
        return None if row is None else tuple(row)

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """Every row of a query."""
        return [tuple(row) for row in self._run(sql, params).fetchall()]

    async def lock(self, name: str) -> None:
        """Nothing to do: a transaction holds SQLite's write lock from its start."""

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """One ``BEGIN IMMEDIATE`` transaction (the file's write lock from its start)."""
        if self._in_transaction:
            raise RuntimeError("a SQLite store runs one transaction at a time")
        self._run("BEGIN IMMEDIATE", ())
        self._in_transaction = True
        try:
            yield self
        except BaseException:
            self._in_transaction = False
            self._run("ROLLBACK", ())
            raise
        self._in_transaction = False
        self._run("COMMIT", ())

    async def owner_alive(self, owner: str | None) -> bool:
        """Whether the store that marked something ``owner`` is still open.

        An owner is ``host:pid:token``. In this process, the token tells whether that store
        is still open; another process on this host is alive while its pid is. Marks from
        other hosts, or no mark, count as orphans.
        """
        parts = (owner or "").rsplit(":", 2)
        if len(parts) != 3 or parts[0] != socket.gethostname() or not parts[1].isdigit():
            return False
        pid = int(parts[1])
        if pid == os.getpid():
            return owner in _OPEN_HERE
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    async def close(self) -> None:
        """Close the file (closing twice is harmless)."""
        _OPEN_HERE.discard(self.replica_id)
        self._closed = True
        self._db.close()

    def _run(self, sql: str, params: Params) -> sqlite3.Cursor:
        if self._closed:
            raise DatabaseError(
                f"{self.path}: the store is closed",
                database=self.description,
                reason="closed",
                retryable=False,
            )
        try:
            return self._db.execute(sql, tuple(params))
        except sqlite3.ProgrammingError:
            raise  # a bug (or a closed store), not the database's fault
        except sqlite3.Error as exc:
            raise self._failed(exc) from exc

    def _failed(self, exc: sqlite3.Error) -> DatabaseError:
        return DatabaseError(
            f"{self.path}: {exc}", database=self.description, reason=str(exc), retryable=False
        )

"""The PostgreSQL store: one database shared by several ``swarmpod serve`` replicas.

Driver: psycopg 3 with its connection pool (``swarmpod[postgres]``): fully typed (mypy
--strict needs no stubs), asyncio-native with server-side parameters, a pool that reconnects
by itself, and ``LISTEN``/``NOTIFY`` on an ordinary async connection; its binary wheel
carries libpq, so nothing is installed beside it.

Each open store is a *replica*: a row of ``replicas`` it heartbeats every ``heartbeat_s``
seconds. What a replica owns (journal entries, with a shared pool its workers) is alive while
its heartbeat is fresh; a replica whose heartbeat is older than twice its interval is dead
and what it owned is recovered by another.
"""

from __future__ import annotations

import logging
import math
import os
import re
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final
from urllib.parse import unquote, urlsplit

import anyio

from .._extras import MissingExtraError
from ..errors import DatabaseError
from ._dialects import POSTGRESQL
from ._interface import Params, Row, Transaction
from ._url import DatabaseUrl

_FEATURE: Final = "a PostgreSQL database (DatabaseUrl)"

try:
    import psycopg
    import psycopg.sql
    import psycopg_pool
except ModuleNotFoundError as missing:  # the `postgres` extra
    raise MissingExtraError("postgres", _FEATURE, missing.name or "psycopg") from missing

__all__ = ["PostgresStore"]

log = logging.getLogger("swarmpod.store")

_PLACEHOLDER: Final = re.compile(r"\?")
_CONNECT_TIMEOUT_S: Final = 10.0
_DEAD_AFTER_HEARTBEATS: Final = 2.0
"""A replica whose heartbeat is older than this many of its intervals is dead."""


def _translate(sql: str) -> str:
    """``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled)."""
    return _PLACEHOLDER.sub("%s", sql.replace("%", "%%"))


class _Statements:
    """Statements on one psycopg connection (a transaction's, or one borrowed per call)."""

    def __init__(self, connection: psycopg.AsyncConnection[Any], store: PostgresStore) -> None:
        self._connection = connection
        self._store = store

    async def execute(self, sql: str, params: Params = ()) -> int:
        cursor = await self._run(sql, params)
        return int(cursor.rowcount)

    async def insert(self, sql: str, params: Params = ()) -> int:
        cursor = await self._run(sql + " RETURNING id", params)
        row = await cursor.fetchone()
        assert row is not None
        return int(row[0])

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        cursor = await self._run(sql, params)
        row = await cursor.fetchone()
        return None if row is None else tuple(row)

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        cursor = await self._run(sql, params)
        return [tuple(row) for row in await cursor.fetchall()]

    async def lock(self, name: str) -> None:
        """An advisory lock on ``name``, held until the transaction ends."""
        await self._run("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", (name,))

    async def _run(self, sql: str, params: Params) -> psycopg.AsyncCursor[Any]:
        try:
            return await self._connection.execute(_translate(sql), tuple(params))
        except psycopg.Error as exc:
            raise self._store.failed(exc) from exc


class PostgresStore:
    """swarmpod's state in a PostgreSQL database (:class:`~orchestrator.store.StateStore`).

    Open it with :meth:`connect` (it heartbeats while open)::

        async with PostgresStore.connect(DatabaseUrl("postgresql://...")) as store:
            ...

    Args:
        url: the database.
        heartbeat_s: how often this replica says it is alive.
        max_connections: the pool's size (a transaction holds one connection).
    """

    dialect: Final = POSTGRESQL
    shared: Final = True

    def __init__(
        self, url: DatabaseUrl, *, heartbeat_s: float = 5.0, max_connections: int = 10
    ) -> None:
        if not (heartbeat_s > 0 and math.isfinite(heartbeat_s)):
            raise ValueError(f"heartbeat_s must be a finite number > 0, got {heartbeat_s!r}")
        self.url = url
        self.description = f"PostgreSQL {url.shown}"
        self.replica_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.heartbeat_s = heartbeat_s
        self._max_connections = max_connections
        self._pool: psycopg_pool.AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
        self._closed = False
        self.evicted = anyio.Event()
        """Set when another replica declared this one dead (its heartbeat came too late)."""

    def __repr__(self) -> str:
        return f"PostgresStore({self.url.shown!r}, replica_id={self.replica_id!r})"

    @classmethod
    @asynccontextmanager
    async def connect(
        cls, url: DatabaseUrl, *, heartbeat_s: float = 5.0, max_connections: int = 10
    ) -> AsyncIterator[PostgresStore]:
        """Connect, register this replica, heartbeat while the block runs, then close.

        Raises:
            MissingExtraError: psycopg is not installed (``pip install 'swarmpod[postgres]'``).
            DatabaseError: the server cannot be reached, or refuses the connection.
            SchemaTooNewError: a newer swarmpod migrated the database.
        """
        store = cls(url, heartbeat_s=heartbeat_s, max_connections=max_connections)
        try:
            await store._open()
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(store._heartbeat)
                try:
                    yield store
                finally:
                    tasks.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await store.close()

    # --- statements ---------------------------------------------------------------------

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement (autocommit); rows changed."""
        async with self._connection() as connection:
            return await _Statements(connection, self).execute(sql, params)

    async def insert(self, sql: str, params: Params = ()) -> int:
        """Run one ``INSERT``; the new row's id."""
        async with self._connection() as connection:
            return await _Statements(connection, self).insert(sql, params)

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """The first row of a query, or None."""
        async with self._connection() as connection:
            return await _Statements(connection, self).fetchone(sql, params)

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """Every row of a query."""
        async with self._connection() as connection:
            return await _Statements(connection, self).fetchall(sql, params)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """One transaction on a connection of the pool."""
        async with self._connection() as connection:
            try:
                async with connection.transaction():
                    yield _Statements(connection, self)
            except psycopg.Error as exc:  # the COMMIT itself failed
                raise self.failed(exc) from exc

    @asynccontextmanager
    async def listening(self, channel: str) -> AsyncIterator[AsyncIterator[str]]:
        """``LISTEN channel`` on a connection of its own; yields the payloads as they come.

        Raises:
            DatabaseError: the connection failed (then, or later while iterating): whoever
                listens may have missed notifications.
        """
        try:
            connection = await psycopg.AsyncConnection.connect(
                self.url.reveal(), autocommit=True, connect_timeout=int(_CONNECT_TIMEOUT_S)
            )
        except psycopg.Error as exc:
            raise self.failed(exc) from exc
        try:
            await connection.execute(
                psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(channel))
            )

            async def payloads() -> AsyncIterator[str]:
                try:
                    async for notification in connection.notifies():
                        yield notification.payload
                except psycopg.Error as exc:
                    raise self.failed(exc) from exc

            yield payloads()
        except psycopg.Error as exc:
            raise self.failed(exc) from exc
        finally:
            with anyio.CancelScope(shield=True):
                await connection.close()

    # --- replicas -----------------------------------------------------------------------

    async def owner_alive(self, owner: str | None) -> bool:
        """Whether the replica ``owner`` still heartbeats (this one always does)."""
        if owner is None:
            return False
        if owner == self.replica_id:
            return not self._closed
        row = await self.fetchone(
            "SELECT 1 FROM replicas WHERE id = ? AND stopped_at IS NULL "
            "AND heartbeat_at > now() - make_interval(secs => interval_s * ?)",
            (owner, _DEAD_AFTER_HEARTBEATS),
        )
        return row is not None

    async def close(self) -> None:
        """Say this replica stopped, and close the pool (closing twice is harmless)."""
        if self._closed:
            return
        pool = self._pool
        if pool is not None:
            try:
                with anyio.move_on_after(_CONNECT_TIMEOUT_S):
                    await self.execute(
                        "UPDATE replicas SET stopped_at = now() WHERE id = ?", (self.replica_id,)
                    )
            except DatabaseError as exc:
                log.warning("[RunPodServerless] %s: could not mark it stopped: %s", self, exc)
        self._closed = True
        if pool is not None:
            await pool.close()

    def failed(self, exc: BaseException) -> DatabaseError:
        """A driver error as a :class:`DatabaseError` (never with the password)."""
        reason = _scrub(" ".join(str(exc).split()) or type(exc).__name__, self.url)
        return DatabaseError(
            f"{self.description}: {reason}", database=self.description, reason=reason
        )

    # --- internals ----------------------------------------------------------------------

    async def _open(self) -> None:
        try:  # one plain connection first: its failure says why (the pool's only times out)
            probe = await psycopg.AsyncConnection.connect(
                self.url.reveal(), autocommit=True, connect_timeout=int(_CONNECT_TIMEOUT_S)
            )
            await probe.close()
        except psycopg.Error as exc:
            raise self._unreachable(exc) from None
        self._pool = psycopg_pool.AsyncConnectionPool(
            self.url.reveal(),
            min_size=1,
            max_size=self._max_connections,
            open=False,
            kwargs={"autocommit": True},
            timeout=_CONNECT_TIMEOUT_S,
            name="swarmpod",
        )
        try:
            await self._pool.open(wait=True, timeout=_CONNECT_TIMEOUT_S)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise self._unreachable(exc) from None
        from ._migrations import migrate
        from ._schema import REPLICAS

        await migrate(self, REPLICAS)
        await self.execute(
            "INSERT INTO replicas (id, host, pid, interval_s) VALUES (?, ?, ?, ?)",
            (self.replica_id, socket.gethostname(), os.getpid(), self.heartbeat_s),
        )
        log.info("[RunPodServerless] state store: %s (replica %s)", self, self.replica_id)

    async def _heartbeat(self) -> None:
        while True:
            await anyio.sleep(self.heartbeat_s)
            try:
                beat = await self.execute(
                    "UPDATE replicas SET heartbeat_at = now() WHERE id = ? AND stopped_at IS NULL",
                    (self.replica_id,),
                )
            except DatabaseError as exc:
                log.warning("[RunPodServerless] heartbeat of replica %s: %s", self.replica_id, exc)
                continue
            if beat == 0 and not self.evicted.is_set():
                log.error(
                    "[RunPodServerless] replica %s was declared dead by another replica (its "
                    "heartbeat came too late); what it held was recovered there",
                    self.replica_id,
                )
                self.evicted.set()

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        if self._pool is None or self._closed:
            raise DatabaseError(
                f"{self.description}: the store is closed",
                database=self.description,
                reason="closed",
                retryable=False,
            )
        try:
            async with self._pool.connection() as connection:
                yield connection
        except psycopg_pool.PoolTimeout as exc:
            raise self.failed(exc) from exc

    def _unreachable(self, exc: BaseException) -> DatabaseError:
        reason = _scrub(" ".join(str(exc).split()) or type(exc).__name__, self.url)
        return DatabaseError(
            f"cannot use the database {self.url.shown} ({reason}). Check DatabaseUrl "
            "(SWARMPOD_DATABASE_URL or [service] database): the server's address, the user, "
            "the password and the database name, and that the server accepts connections "
            "from this host.",
            database=self.description,
            reason=reason,
        )


def _scrub(text: str, url: DatabaseUrl) -> str:
    """``text`` without the URL's password (a driver may quote what it was given)."""
    password = urlsplit(url.reveal()).password
    secrets: list[str] = [s for s in (password, unquote(password or "")) if s]
    for secret in secrets:
        text = text.replace(secret, "********")
    return text.replace(url.reveal(), url.shown)

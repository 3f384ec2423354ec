"""The state-store seam: what every store of swarmpod's state asks of its database.

The lease journal, the detected protocols, the GPU budgets, the accounts and the model
catalogs are written once, against :class:`StateStore`, in SQL that SQLite and PostgreSQL
both run (``?`` placeholders; the few differences are in :class:`Dialect` and in each
component's migrations). Two implementations: :class:`~orchestrator.store.SqliteStore` (one
file, the embedded default) and :class:`~orchestrator.store.PostgresStore` (one database
shared by several replicas).

Every call is a coroutine. With SQLite it runs at once on the event loop's thread (a local
file: no task switch happens inside a call or a transaction); with PostgreSQL it waits for
the server without blocking the loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

__all__ = ["Dialect", "Params", "Row", "StateStore", "Statements", "Transaction"]

Row = tuple[Any, ...]
"""One result row, its columns in the order selected."""
Params = Sequence[Any]
"""The values of a statement's ``?`` placeholders, in order."""


@dataclass(frozen=True)
class Dialect:
    """What differs between the two databases' SQL, as fragments to put in a statement.

    Attributes:
        name: ``sqlite`` or ``postgresql``.
        now: an expression for the current UTC time as ISO 8601 text with milliseconds
            (``2026-11-28T23:00:00.000Z``), the database's own clock.
        insertion_order: a column that orders a table's rows as they were inserted
            (SQLite's ``rowid``; a ``seq`` identity column on PostgreSQL).
    """

    name: Literal["sqlite", "postgresql"]
    now: str
    insertion_order: str


class Statements(Protocol):
    """Statements with ``?`` placeholders, on a store or inside one of its transactions."""

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; how many rows it changed."""
        ...

    async def insert(self, sql: str, params: Params = ()) -> int:
        """Run one ``INSERT`` into a table with an ``id`` key; the new row's id."""
        ...

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """The first row of a query, or None."""
        ...

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """Every row of a query."""
        ...


class Transaction(Statements, Protocol):
    """Statements committed together when the transaction's block ends (rolled back on an
    error). A transaction holds its database for its whole block: nothing else is awaited
    inside one."""

    async def lock(self, name: str) -> None:
        """Serialise this transaction with every other one that locks ``name`` (until it
        ends), across processes: SQLite's write lock already does; PostgreSQL takes an
        advisory lock."""
        ...


class StateStore(Statements, Protocol):
    """One database holding swarmpod's state (outside a transaction, each statement commits
    at once)."""

    @property
    def dialect(self) -> Dialect:
        """Its SQL differences."""
        ...

    @property
    def description(self) -> str:
        """How it is shown at start and in errors (``SQLite /var/lib/...``, ``PostgreSQL
        postgresql://user@host/db``): never a password."""
        ...

    @property
    def replica_id(self) -> str:
        """This process's mark on what it owns in the store (journal entries, and with
        PostgreSQL, workers of the shared pool): ``host:pid:token``."""
        ...

    @property
    def shared(self) -> bool:
        """Several replicas may use it at once (PostgreSQL): what one owns is alive while
        its heartbeat is, not while its process is."""
        ...

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """``async with store.transaction() as tx:`` one transaction."""
        ...

    async def owner_alive(self, owner: str | None) -> bool:
        """Whether the replica that marked something ``owner`` still runs (its things are
        not orphans to recover)."""
        ...

    async def close(self) -> None:
        """Close the store (its open things become orphans for the next start, or another
        replica, to recover)."""
        ...

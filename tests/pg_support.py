"""A real PostgreSQL for the tests: one server per test session (``benchmarks._pg_server``),
a fresh database per test. No database is ever mocked."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from benchmarks._pg_server import PostgresServer
from orchestrator.store import DatabaseUrl, StateStore, opened_store

StoreKind = Literal["sqlite", "postgresql"]


@dataclass(frozen=True)
class StoreSpot:
    """Where a test's state lives: a SQLite file, or a fresh PostgreSQL database.

    Attributes:
        kind: ``sqlite`` or ``postgresql``.
        path: the SQLite file (also given with PostgreSQL: unused there).
        url: the PostgreSQL database, None for SQLite.
    """

    kind: StoreKind
    path: Path
    url: DatabaseUrl | None

    @contextlib.asynccontextmanager
    async def open(self, *, heartbeat_s: float = 5.0) -> AsyncIterator[StateStore]:
        """A store on it, closed after (open several at once: they are two replicas)."""
        async with opened_store(self.url, self.path, heartbeat_s=heartbeat_s) as store:
            yield store

    def env(self) -> dict[str, str]:
        """``SWARMPOD_DATABASE_URL`` for a process that should use it (empty for SQLite)."""
        return {} if self.url is None else {"SWARMPOD_DATABASE_URL": self.url.reveal()}


@contextlib.contextmanager
def store_spot(
    kind: StoreKind, directory: Path, server: PostgresServer | None
) -> Iterator[StoreSpot]:
    """A spot of ``kind`` in ``directory`` (SQLite) or on ``server`` (a new database)."""
    path = directory / "swarmpod.sqlite3"
    if kind == "sqlite":
        yield StoreSpot(kind, path, None)
        return
    assert server is not None
    url = server.new_database()
    try:
        yield StoreSpot(kind, path, url)
    finally:
        server.drop_database(url)


async def everything_stored(spot: StoreSpot, store: StateStore) -> bytes:
    """Every byte the state occupies: the SQLite files (database, -wal, -shm) in the spot's
    folder, or every value of every table of the PostgreSQL database, as text."""
    if spot.url is None:
        folder = spot.path.parent
        return b"".join(p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file())
    tables = await store.fetchall(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
    )
    found = bytearray()
    for (table,) in tables:
        for row in await store.fetchall(f'SELECT * FROM "{table}"'):
            for value in row:
                is_bytes = isinstance(value, bytes | memoryview)
                found += bytes(value) if is_bytes else str(value).encode()
    return bytes(found)


sqlite_only = pytest.mark.parametrize("store_kind", ["sqlite"], indirect=True)
"""For a test of the store that is not about the database (a refusal before any write): run
it on SQLite only."""

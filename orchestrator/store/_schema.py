"""The tables of every component of swarmpod's state, version by version, in both dialects.

Version 1 of the SQLite components is the schema swarmpod wrote before migrations were
versioned (``CREATE TABLE IF NOT EXISTS``), so a file from then is adopted as it is.
PostgreSQL holds every component in one database (a database of its own is advised: the
tables have plain names such as ``users``).
"""

from __future__ import annotations

from typing import Final

from ._dialects import POSTGRESQL, SQLITE
from ._interface import Dialect, Transaction
from ._migrations import Component, Migration

__all__ = ["ACCOUNTS", "BUDGETS", "CATALOGS", "JOURNAL", "POOL", "REPLICAS"]

_SQLITE_NOW: Final = f"({SQLITE.now})"
PG_NOW: Final = f"({POSTGRESQL.now})"


async def _journal_before_owners(tx: Transaction, dialect: Dialect) -> None:
    """A journal written before entries had owners gets the column (SQLite only)."""
    if dialect.name != "sqlite":
        return
    columns = {row[1] for row in await tx.fetchall("PRAGMA table_info(leases)")}
    if "owner" not in columns:
        await tx.execute("ALTER TABLE leases ADD COLUMN owner TEXT")


JOURNAL: Final = Component(
    "journal",
    (
        Migration(
            1,
            sqlite=(
                f"""CREATE TABLE IF NOT EXISTS leases (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    endpoint_id TEXT NOT NULL,
                    protocol TEXT NOT NULL,
                    key_fingerprint TEXT NOT NULL,
                    job_id TEXT,
                    opened_at TEXT NOT NULL DEFAULT {_SQLITE_NOW},
                    closed_at TEXT,
                    outcome TEXT,
                    owner TEXT
                )""",
                f"""CREATE TABLE IF NOT EXISTS endpoint_protocols (
                    endpoint_id TEXT PRIMARY KEY,
                    protocol TEXT NOT NULL,
                    detected_at TEXT NOT NULL DEFAULT {_SQLITE_NOW}
                )""",
            ),
            postgresql=(
                f"""CREATE TABLE leases (
                    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    endpoint_id TEXT NOT NULL,
                    protocol TEXT NOT NULL,
                    key_fingerprint TEXT NOT NULL,
                    job_id TEXT,
                    opened_at TEXT NOT NULL DEFAULT {PG_NOW},
                    closed_at TEXT,
                    outcome TEXT,
                    owner TEXT
                )""",
                "CREATE INDEX leases_open ON leases (owner) WHERE closed_at IS NULL",
                f"""CREATE TABLE endpoint_protocols (
                    endpoint_id TEXT PRIMARY KEY,
                    protocol TEXT NOT NULL,
                    detected_at TEXT NOT NULL DEFAULT {PG_NOW}
                )""",
            ),
        ),
    ),
    legacy=_journal_before_owners,
)
"""The lease journal (``leases``) and the detected worker protocols."""

BUDGETS: Final = Component(
    "budgets",
    (
        Migration(
            1,
            sqlite=(
                """CREATE TABLE IF NOT EXISTS gpu_usage (
                    "user" TEXT NOT NULL,
                    day TEXT NOT NULL,
                    gpu_seconds REAL NOT NULL DEFAULT 0,
                    PRIMARY KEY ("user", day)
                )""",
            ),
            postgresql=(
                """CREATE TABLE gpu_usage (
                    "user" TEXT NOT NULL,
                    day TEXT NOT NULL,
                    gpu_seconds DOUBLE PRECISION NOT NULL DEFAULT 0,
                    PRIMARY KEY ("user", day)
                )""",
            ),
        ),
    ),
)
"""GPU-seconds per user and UTC day."""

_NAMES_IGNORING_CASE: Final = (
    "CREATE UNIQUE INDEX IF NOT EXISTS users_name_nocase ON users (lower(name))"
)

ACCOUNTS: Final = Component(
    "accounts",
    (
        Migration(
            1,
            sqlite=(
                """CREATE TABLE IF NOT EXISTS users (
                    name TEXT PRIMARY KEY,
                    role TEXT NOT NULL
                )""",
                """CREATE TABLE IF NOT EXISTS tokens (
                    id TEXT PRIMARY KEY,
                    user TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
                    hash TEXT NOT NULL UNIQUE,
                    label TEXT NOT NULL,
                    created_at TEXT NOT NULL,
                    last_used_at TEXT
                )""",
                "CREATE INDEX IF NOT EXISTS tokens_by_user ON tokens (user)",
                """CREATE TABLE IF NOT EXISTS runpod_keys (
                    user TEXT PRIMARY KEY REFERENCES users (name) ON DELETE CASCADE,
                    encrypted BLOB NOT NULL,
                    key_last_updated TEXT NOT NULL
                )""",
                """CREATE TABLE IF NOT EXISTS meta (
                    name TEXT PRIMARY KEY,
                    value BLOB NOT NULL
                )""",
            ),
            postgresql=(
                """CREATE TABLE users (
                    name TEXT PRIMARY KEY,
                    role TEXT NOT NULL
                )""",
                """CREATE TABLE tokens (
                    seq BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
                    id TEXT PRIMARY KEY,
                    "user" TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
                    hash TEXT NOT NULL UNIQUE,
                    label TEXT NOT NULL,
                    created_at TEXT NOT NULL,
                    last_used_at TEXT
                )""",
                'CREATE INDEX tokens_by_user ON tokens ("user")',
                """CREATE TABLE runpod_keys (
                    "user" TEXT PRIMARY KEY REFERENCES users (name) ON DELETE CASCADE,
                    encrypted BYTEA NOT NULL,
                    key_last_updated TEXT NOT NULL
                )""",
                """CREATE TABLE meta (
                    name TEXT PRIMARY KEY,
                    value BYTEA NOT NULL
                )""",
            ),
        ),
        Migration(2, sqlite=(_NAMES_IGNORING_CASE,), postgresql=(_NAMES_IGNORING_CASE,)),
    ),
)
"""Users, API token hashes, encrypted RunPod keys and the master key's canary. Version 2: a
user name is unique ignoring case in the database itself (two replicas adding ``Ann`` and
``ann`` at once cannot both win)."""

CATALOGS: Final = Component(
    "catalogs",
    (
        Migration(
            1,
            sqlite=(
                """CREATE TABLE IF NOT EXISTS model_catalogs (
                    endpoint_id TEXT PRIMARY KEY,
                    refreshed_at TEXT,
                    catalog TEXT NOT NULL
                )""",
            ),
            postgresql=(
                """CREATE TABLE model_catalogs (
                    endpoint_id TEXT PRIMARY KEY,
                    refreshed_at TEXT,
                    catalog TEXT NOT NULL
                )""",
            ),
        ),
    ),
)
"""Model catalogs per endpoint (JSON)."""

REPLICAS: Final = Component(
    "replicas",
    (
        Migration(
            1,
            sqlite=(),  # one process per SQLite file's journal owner: liveness is its pid
            postgresql=(
                """CREATE TABLE replicas (
                    id TEXT PRIMARY KEY,
                    host TEXT NOT NULL,
                    pid INTEGER NOT NULL,
                    interval_s DOUBLE PRECISION NOT NULL,
                    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                    heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                    stopped_at TIMESTAMPTZ
                )""",
            ),
        ),
    ),
)
"""The replicas sharing a PostgreSQL database, and their heartbeats."""

POOL: Final = Component(
    "pool",
    (
        Migration(
            1,
            sqlite=(),  # one process per SQLite file: its pool lives in its memory
            postgresql=(
                """CREATE TABLE pool_workers (
                    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    endpoint_id TEXT NOT NULL,
                    key_fingerprint TEXT NOT NULL,
                    protocol TEXT NOT NULL,
                    owner TEXT NOT NULL,
                    state TEXT NOT NULL,
                    capacity INTEGER NOT NULL,
                    busy INTEGER NOT NULL DEFAULT 0 CHECK (busy >= 0),
                    worker_id TEXT,
                    job_id TEXT,
                    journal_entry BIGINT,
                    public_url TEXT,
                    sealed BYTEA,
                    hold_s DOUBLE PRECISION NOT NULL DEFAULT 0,
                    requested_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                    warm_at TIMESTAMPTZ,
                    idle_since TIMESTAMPTZ,
                    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
                )""",
                "CREATE INDEX pool_workers_pool ON pool_workers (endpoint_id, key_fingerprint)",
                "CREATE INDEX pool_workers_owner ON pool_workers (owner)",
                """CREATE TABLE pool_seats (
                    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    worker BIGINT NOT NULL REFERENCES pool_workers (id) ON DELETE CASCADE,
                    replica TEXT NOT NULL,
                    taken_at TIMESTAMPTZ NOT NULL DEFAULT now()
                )""",
                "CREATE INDEX pool_seats_worker ON pool_seats (worker)",
                "CREATE INDEX pool_seats_replica ON pool_seats (replica)",
                """CREATE TABLE pool_demand (
                    replica TEXT NOT NULL,
                    endpoint_id TEXT NOT NULL,
                    key_fingerprint TEXT NOT NULL,
                    waiting INTEGER NOT NULL,
                    PRIMARY KEY (replica, endpoint_id, key_fingerprint)
                )""",
            ),
        ),
    ),
)
"""The warm pool replicas share (PostgreSQL only): one row per worker (its chart's state,
seats, URL and sealed gateway token, owner replica), one per seat taken, and how many
generations wait at each replica."""

"""Versioned schema migrations, applied when a store is opened; a newer database is refused.

Each part of the state (the lease journal, budgets, accounts, ...) is a :class:`Component`
with its own numbered migrations and its version in the table ``swarmpod_schema``. Opening a
component applies the migrations the database has not seen yet, in one transaction that
also holds a lock, so replicas starting together migrate once. A database whose version of
a component is newer than this code knows is refused (:class:`SchemaTooNewError`) and left
untouched.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..errors import SchemaTooNewError
from ._interface import Dialect, StateStore, Transaction

__all__ = ["Component", "Migration", "migrate"]

_VERSIONS_TABLE = """
CREATE TABLE IF NOT EXISTS swarmpod_schema (
    component TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    migrated_at TEXT NOT NULL
)
"""


@dataclass(frozen=True)
class Migration:
    """One step of a component's schema, in each database's SQL.

    Attributes:
        version: the version it brings the component to (1, 2, ...).
        sqlite: its statements for SQLite.
        postgresql: its statements for PostgreSQL.
    """

    version: int
    sqlite: tuple[str, ...]
    postgresql: tuple[str, ...]

    def statements(self, dialect: Dialect) -> tuple[str, ...]:
        """The statements for ``dialect``."""
        return self.sqlite if dialect.name == "sqlite" else self.postgresql


LegacyFix = Callable[[Transaction, Dialect], Awaitable[None]]
"""Brings a SQLite file written before migrations were versioned up to version 1."""


@dataclass(frozen=True)
class Component:
    """A part of swarmpod's state and its migrations, oldest first.

    Attributes:
        name: ``journal``, ``budgets``, ``accounts``, ``catalogs``, ``replicas``, ...
        migrations: versions 1, 2, ... in order.
        legacy: run after version 1 on a file that had no version yet (its tables may be
            from before migrations were versioned).
    """

    name: str
    migrations: tuple[Migration, ...]
    legacy: LegacyFix | None = None

    def __post_init__(self) -> None:
        numbers = [migration.version for migration in self.migrations]
        if numbers != list(range(1, len(numbers) + 1)):
            raise ValueError(f"{self.name}: migrations must be numbered 1, 2, ...: {numbers}")

    @property
    def latest(self) -> int:
        """The newest version this code knows."""
        return len(self.migrations)


async def migrate(store: StateStore, component: Component) -> int:
    """Bring ``component`` to its latest version in ``store``; returns the version found.

    Raises:
        SchemaTooNewError: the database is at a newer version than this code knows.
        DatabaseError: a migration failed (nothing of it was applied).
    """
    async with store.transaction() as tx:
        await tx.lock("swarmpod schema")
        await tx.execute(_VERSIONS_TABLE)
        row = await tx.fetchone(
            "SELECT version FROM swarmpod_schema WHERE component = ?", (component.name,)
        )
        found = int(row[0]) if row is not None else 0
        if found > component.latest:
            raise SchemaTooNewError(
                f"{store.description}: its {component.name} tables are at schema version "
                f"{found}, newer than this swarmpod knows ({component.latest}): a newer "
                "swarmpod migrated them. Run that version (or newer) of swarmpod; this one "
                "left its tables untouched.",
                database=store.description,
                component=component.name,
                found=found,
                supported=component.latest,
            )
        for migration in component.migrations[found:]:
            for statement in migration.statements(store.dialect):
                await tx.execute(statement)
            if migration.version == 1 and component.legacy is not None:
                await component.legacy(tx, store.dialect)
        if found < component.latest:
            await tx.execute(
                "INSERT INTO swarmpod_schema (component, version, migrated_at) "
                f"VALUES (?, ?, {store.dialect.now}) ON CONFLICT (component) DO UPDATE SET "
                "version = excluded.version, migrated_at = excluded.migrated_at",
                (component.name, component.latest),
            )
    return found

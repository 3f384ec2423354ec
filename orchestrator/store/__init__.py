"""swarmpod's state store: one interface, SQLite (the embedded default) or PostgreSQL.

- :class:`StateStore`: what the lease journal, protocols, budgets, accounts and model
  catalogs ask of their database (``_interface``); :class:`Dialect` its SQL differences.
- :class:`SqliteStore`: one file, created 0600, WAL (``_sqlite``).
- :class:`PostgresStore`: one database shared by several replicas, which heartbeat
  (``_postgres``; psycopg 3 from ``swarmpod[postgres]``, imported only when used).
- :class:`DatabaseUrl`: a ``postgresql://`` URL that never shows its password.
- :func:`migrate` and the :class:`Component` s of the schema (``_migrations``, ``_schema``):
  versioned, applied at open; a database newer than the code is refused.
- :func:`opened_store`: PostgreSQL when a DatabaseUrl is set, else the SQLite file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._interface import Dialect as Dialect
from ._interface import Params as Params
from ._interface import Row as Row
from ._interface import Statements as Statements
from ._interface import StateStore as StateStore
from ._interface import Transaction as Transaction
from ._migrations import Component as Component
from ._migrations import Migration as Migration
from ._migrations import migrate as migrate
from ._open import open_component as open_component
from ._open import opened_store as opened_store
from ._schema import ACCOUNTS as ACCOUNTS
from ._schema import BUDGETS as BUDGETS
from ._schema import CATALOGS as CATALOGS
from ._schema import JOURNAL as JOURNAL
from ._schema import POOL as POOL
from ._schema import REPLICAS as REPLICAS
from ._sqlite import SqliteStore as SqliteStore
from ._url import DatabaseUrl as DatabaseUrl

if TYPE_CHECKING:
    from ._postgres import PostgresStore as PostgresStore

__all__ = [
    "ACCOUNTS",
    "BUDGETS",
    "CATALOGS",
    "JOURNAL",
    "POOL",
    "REPLICAS",
    "Component",
    "DatabaseUrl",
    "Dialect",
    "Migration",
    "Params",
    "PostgresStore",
    "Row",
    "SqliteStore",
    "StateStore",
    "Statements",
    "Transaction",
    "migrate",
    "open_component",
    "opened_store",
]


def __getattr__(name: str) -> Any:
    """:class:`PostgresStore` is imported on first use (it needs ``swarmpod[postgres]``)."""
    if name == "PostgresStore":
        from ._postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

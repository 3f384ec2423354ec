"""The two dialects' SQL differences (no driver imported here)."""

from __future__ import annotations

from typing import Final

from ._interface import Dialect

__all__ = ["POSTGRESQL", "SQLITE"]

SQLITE: Final = Dialect(
    name="sqlite",
    now="strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
    insertion_order="rowid",
)
"""SQLite's SQL differences."""

POSTGRESQL: Final = Dialect(
    name="postgresql",
    now="to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
    insertion_order="seq",
)
"""PostgreSQL's SQL differences."""

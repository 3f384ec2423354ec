"""Opening the store a setting names: PostgreSQL when a DatabaseUrl is given, else SQLite."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from .._state import STATE_FILE_HOLDS
from ._interface import StateStore
from ._sqlite import SqliteStore
from ._url import DatabaseUrl

__all__ = ["opened_store"]


@asynccontextmanager
async def opened_store(
    database: DatabaseUrl | None,
    file: str | os.PathLike[str],
    *,
    holds: str = STATE_FILE_HOLDS,
    heartbeat_s: float = 5.0,
) -> AsyncIterator[StateStore]:
    """The PostgreSQL database ``database`` if given, else the SQLite ``file``; closed after.

    Raises:
        StateFileError: the SQLite file is unusable (left untouched).
        DatabaseError: PostgreSQL cannot be reached or used.
        MissingExtraError: a DatabaseUrl without ``swarmpod[postgres]`` installed.
    """
    if database is None:
        store = SqliteStore(file, holds=holds)
        try:
            yield store
        finally:
            await store.close()
        return
    from ._postgres import PostgresStore  # psycopg only when asked for

    async with PostgresStore.connect(database, heartbeat_s=heartbeat_s) as shared:
        yield shared

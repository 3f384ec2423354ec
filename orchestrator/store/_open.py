"""Opening the store a setting names: PostgreSQL when a DatabaseUrl is given, else SQLite."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from .._state import STATE_FILE_HOLDS
from ._interface import StateStore
from ._migrations import Component, migrate
from ._sqlite import SqliteStore
from ._url import DatabaseUrl

__all__ = ["open_component", "opened_store"]


async def open_component(
    where: StateStore | str | os.PathLike[str],
    component: Component,
    *,
    holds: str = STATE_FILE_HOLDS,
) -> tuple[StateStore, bool]:
    """The store of ``component`` with its tables migrated: ``where`` itself, or the SQLite
    file ``where`` names (opened here); and whether it was opened here (its user closes it).

    Raises:
        StateFileError: the SQLite file is unusable (left untouched).
        SchemaTooNewError: a newer swarmpod migrated the component.
    """
    if not isinstance(where, str | os.PathLike):
        await migrate(where, component)
        return where, False
    store = SqliteStore(where, holds=holds)
    try:
        await migrate(store, component)
    except BaseException:
        await store.close()
        raise
    return store, True


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

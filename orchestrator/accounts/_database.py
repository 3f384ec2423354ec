"""Where the accounts live: their own SQLite file (created 0600), or the shared PostgreSQL
database, with their tables migrated (``orchestrator.store.ACCOUNTS``).

SQLite gives its ``-wal`` and ``-shm`` files the permissions of the database file, so they are
0600 too; ``secure_delete`` zeroes what is deleted (revoked token hashes, replaced encrypted
keys) instead of leaving it in free pages.
"""

from __future__ import annotations

import os
from typing import Final

from ..store import ACCOUNTS, Statements, StateStore, open_component

__all__ = ["ACCOUNTS_HOLD", "open_accounts", "read_meta"]

ACCOUNTS_HOLD: Final = "its users, API tokens and stored RunPod keys"
"""What the accounts file holds, for the message when it is unusable."""


async def open_accounts(where: StateStore | str | os.PathLike[str]) -> tuple[StateStore, bool]:
    """The store of the accounts, their tables migrated; and whether it was opened here (a
    file) rather than given.

    Raises:
        StateFileError: the SQLite file is unusable (left untouched).
        SchemaTooNewError: a newer swarmpod migrated the accounts.
    """
    return await open_component(where, ACCOUNTS, holds=ACCOUNTS_HOLD)


async def read_meta(db: Statements, name: str) -> bytes | None:
    """A value of the ``meta`` table, if set."""
    row = await db.fetchone("SELECT value FROM meta WHERE name = ?", (name,))
    return None if row is None else bytes(row[0])

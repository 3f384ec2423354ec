"""swarmpod's SQLite files: where the state file lives, and how every store opens one.

Every store (lease journal, budgets, accounts, model catalogs) opens its file with
:func:`connect_private`: SQLite's descriptor is the only one ever opened on it. A second,
raw descriptor (``os.open``/``os.close``) would drop the process's POSIX locks on the file when
closed, and another process sharing the file would then delete the WAL this one still writes
to.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

__all__ = ["connect_private", "default_state_file"]


def default_state_file() -> Path:
    """``$SWARMPOD_STATE_DIR/swarmpod.sqlite3``, else under ``$XDG_STATE_HOME/swarmpod`` or
    ``~/.local/state/swarmpod``.

    >>> default_state_file().name
    'swarmpod.sqlite3'
    """
    explicit = os.environ.get("SWARMPOD_STATE_DIR")
    if explicit:
        return Path(explicit) / "swarmpod.sqlite3"
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "swarmpod" / "swarmpod.sqlite3"


def connect_private(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """Open a SQLite file in autocommit mode, creating it (and its folders) with mode 0600.

    A file this call creates is made 0600 before anything is written to it; SQLite gives its
    ``-wal`` and ``-shm`` files the mode of the database file. ``":memory:"`` opens an
    in-memory database.
    """
    name = os.fspath(path)
    if name == ":memory:":
        return sqlite3.connect(name, isolation_level=None)
    file = Path(name)
    file.parent.mkdir(parents=True, exist_ok=True)
    created = not file.exists()
    db = sqlite3.connect(file, isolation_level=None)  # SQLite creates the file, still empty
    if created:
        try:
            file.chmod(0o600)
        except BaseException:
            db.close()
            raise
    return db

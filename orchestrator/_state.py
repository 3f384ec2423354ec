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
from typing import Final

from .errors import StateFileError

__all__ = ["STATE_FILE_HOLDS", "connect_private", "default_state_file"]


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


STATE_FILE_HOLDS: Final = (
    "its lease journal (leases a crashed run left running: check the RunPod console), "
    "detected worker protocols and GPU budgets"
)
"""What the state file holds, for the message that says what moving it aside loses."""

_DAMAGED: Final = frozenset({"SQLITE_NOTADB", "SQLITE_CORRUPT"})


def connect_private(
    path: str | os.PathLike[str], *, holds: str = STATE_FILE_HOLDS
) -> sqlite3.Connection:
    """Open a SQLite file in autocommit mode, creating it (and its folders) with mode 0600.

    A file this call creates is made 0600 before anything is written to it; SQLite gives its
    ``-wal`` and ``-shm`` files the mode of the database file. The file is checked before it
    is used (``quick_check``, and that it can be written); ``":memory:"`` opens an in-memory
    database.

    Args:
        path: the file.
        holds: what the file holds, for the message when it is unusable.

    Raises:
        StateFileError: the file is not a database, is damaged, or cannot be opened or
            written. It is left as it was.
    """
    name = os.fspath(path)
    if name == ":memory:":
        return sqlite3.connect(name, isolation_level=None)
    file = Path(name)
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        created = not file.exists()
        db = sqlite3.connect(file, isolation_level=None)  # SQLite creates it, still empty
    except (OSError, sqlite3.Error) as exc:
        raise _unusable(name, exc, holds) from None
    try:
        if created:
            file.chmod(0o600)
        verdict = [row[0] for row in db.execute("PRAGMA quick_check(1)")]
        if verdict != ["ok"]:
            found = " ".join(" ".join(map(str, verdict)).split())
            raise sqlite3.DatabaseError(f"integrity check: {found}")
        db.execute("BEGIN IMMEDIATE")  # it can be written (a read-only file fails here)
        db.execute("ROLLBACK")
    except (OSError, sqlite3.Error) as exc:
        db.close()
        raise _unusable(name, exc, holds) from None
    return db


def _unusable(path: str, exc: OSError | sqlite3.Error, holds: str) -> StateFileError:
    reason = str(exc.strerror or exc) if isinstance(exc, OSError) else str(exc)
    damaged = isinstance(exc, sqlite3.DatabaseError) and (
        getattr(exc, "sqlite_errorname", "") in _DAMAGED or reason.startswith("integrity check")
    )
    if damaged:
        message = (
            f"{path} is not a usable SQLite database ({reason}); swarmpod left it untouched. "
            "Restore it from a backup, or move it aside (with its -wal and -shm files, if "
            f"any) and start again with a new one, without {holds}."
        )
    else:
        message = (
            f"{path} cannot be opened or written ({reason}); swarmpod left it untouched. "
            "Check that it is a file (not a folder) that the user swarmpod runs as can read "
            "and write, in a folder it can write."
        )
    return StateFileError(message, file=path, reason=reason)

"""The lease journal: every worker-holding job swarmpod opened, in SQLite, so none is orphaned.

An entry is written *before* the job is requested and closed when the job ends.
If the process dies in between, the next start finds the entry still open and cancels the job
with the key it was opened with (:func:`recover_leases`). The file never holds a key: an entry
keeps the key's fingerprint, and recovery looks the key up among the keys it is given.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Final

from .._state import connect_private
from ..errors import OrchestratorError, RunPodNotFoundError
from ..secrets import Secret

__all__ = ["JournalEntry", "LeaseJournal", "Recovery", "recover_leases"]

log = logging.getLogger("swarmpod.workers")

_COLUMNS: Final = (
    "id, endpoint_id, protocol, key_fingerprint, job_id, opened_at, closed_at, outcome, owner"
)
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS leases (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint_id TEXT NOT NULL,
    protocol TEXT NOT NULL,
    key_fingerprint TEXT NOT NULL,
    job_id TEXT,
    opened_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    closed_at TEXT,
    outcome TEXT,
    owner TEXT
);
CREATE TABLE IF NOT EXISTS endpoint_protocols (
    endpoint_id TEXT PRIMARY KEY,
    protocol TEXT NOT NULL,
    detected_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
"""


_OPEN_JOURNALS: set[str] = set()
"""Owner marks of the journals open in this process (their leases are alive, not orphans)."""


def _owner_alive(owner: str | None) -> bool:
    """Whether the journal that wrote an entry is still open somewhere (its leases are live).

    An owner is ``host:pid:token``. In this process, the token tells whether that journal is
    still open; another process on this host is alive while its pid is. Entries from other
    hosts, or without an owner, count as orphans.
    """
    parts = (owner or "").rsplit(":", 2)
    if len(parts) != 3 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False
    host_pid = int(parts[1])
    if host_pid == os.getpid():
        return owner in _OPEN_JOURNALS
    try:
        os.kill(host_pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class JournalEntry:
    """One journalled lease (or v1 keepalive).

    Attributes:
        id: the entry's id in the journal.
        endpoint_id: the endpoint the job was requested on.
        protocol: ``"v1"`` (keepalive) or ``"v2"`` (lease).
        key_fingerprint: :attr:`Secret.fingerprint` of the key it was opened with.
        job_id: the RunPod job id, None while the request is in flight.
        opened_at: when the entry was written (UTC, ISO 8601).
        closed_at: when it was closed, None while open.
        outcome: how it ended (``released``, ``ended``, ``lost``, ``recovered``, ...).
        owner: ``host:pid:token`` of the journal that opened it; entries of a journal still
            open (in a live process) are never recovered.
    """

    id: int
    endpoint_id: str
    protocol: str
    key_fingerprint: str
    job_id: str | None
    opened_at: str
    closed_at: str | None
    outcome: str | None
    owner: str | None = None


class LeaseJournal:
    """The journal in one SQLite file (created 0600 on first use).

    Each call is one short transaction, committed before it returns, so an entry survives a
    crash right after the call.

    >>> journal = LeaseJournal(":memory:")
    >>> entry = journal.begin("ep", "v2", Secret("rpa_KEY"))
    >>> journal.attach(entry, "job-1")
    >>> [e.job_id for e in journal.open_entries()]
    ['job-1']
    >>> journal.close(entry, "released")
    >>> journal.open_entries()
    []
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        _OPEN_JOURNALS.add(self.owner)
        self._db = connect_private(self.path)
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(leases)")}
        if "owner" not in columns:  # a journal written before entries had owners
            self._db.execute("ALTER TABLE leases ADD COLUMN owner TEXT")

    def __repr__(self) -> str:
        return f"LeaseJournal({self.path!r})"

    def close_file(self) -> None:
        """Close the SQLite connection; its open entries become orphans to recover."""
        _OPEN_JOURNALS.discard(self.owner)
        self._db.close()

    def begin(self, endpoint_id: str, protocol: str, key: Secret) -> int:
        """Write an open entry before requesting the job; returns the entry id."""
        cursor = self._db.execute(
            "INSERT INTO leases (endpoint_id, protocol, key_fingerprint, owner) "
            "VALUES (?, ?, ?, ?)",
            (endpoint_id, protocol, key.fingerprint, self.owner),
        )
        entry_id = cursor.lastrowid
        assert entry_id is not None
        return entry_id

    def attach(self, entry_id: int, job_id: str) -> None:
        """Record the job id RunPod gave the request."""
        self._db.execute("UPDATE leases SET job_id = ? WHERE id = ?", (job_id, entry_id))

    def close(self, entry_id: int, outcome: str) -> None:
        """Close an entry: its job has ended (or was never created)."""
        self._db.execute(
            "UPDATE leases SET closed_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), outcome = ? "
            "WHERE id = ? AND closed_at IS NULL",
            (outcome, entry_id),
        )

    def open_entries(self, endpoint_id: str | None = None) -> list[JournalEntry]:
        """Entries not closed yet (all endpoints, or one), oldest first."""
        query = f"SELECT {_COLUMNS} FROM leases WHERE closed_at IS NULL"
        params: tuple[str, ...] = ()
        if endpoint_id is not None:
            query += " AND endpoint_id = ?"
            params = (endpoint_id,)
        rows = self._db.execute(query + " ORDER BY id", params).fetchall()
        return [JournalEntry(*row) for row in rows]

    def remember_protocol(self, endpoint_id: str, protocol: str) -> None:
        """Remember the worker protocol an endpoint was found to speak (``auto``)."""
        self._db.execute(
            "INSERT INTO endpoint_protocols (endpoint_id, protocol) VALUES (?, ?) "
            "ON CONFLICT (endpoint_id) DO UPDATE SET protocol = excluded.protocol, "
            "detected_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            (endpoint_id, protocol),
        )

    def known_protocol(self, endpoint_id: str) -> tuple[str, dt.datetime] | None:
        """The protocol remembered for an endpoint and when it was found (UTC), if any."""
        row = self._db.execute(
            "SELECT protocol, detected_at FROM endpoint_protocols WHERE endpoint_id = ?",
            (endpoint_id,),
        ).fetchone()
        if row is None:
            return None
        detected = dt.datetime.fromisoformat(str(row[1]).replace("Z", "+00:00"))
        return str(row[0]), detected

    def entry(self, entry_id: int) -> JournalEntry:
        """One entry by id (KeyError if there is none)."""
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM leases WHERE id = ?", (entry_id,)
        ).fetchone()
        if row is None:
            raise KeyError(entry_id)
        return JournalEntry(*row)


@dataclass(frozen=True)
class Recovery:
    """What recovery did with one entry a previous process left open.

    Attributes:
        entry: the entry as it was found.
        cancelled: whether its job was cancelled now.
        reason: what happened, in words (for the start-up report).
    """

    entry: JournalEntry
    cancelled: bool
    reason: str


Canceller = Callable[[JournalEntry, Secret], Awaitable[None]]
"""Cancels an entry's job on its endpoint with the given key (raises OrchestratorError)."""


async def recover_leases(
    journal: LeaseJournal, keys: Iterable[Secret], cancel: Canceller
) -> list[Recovery]:
    """Cancel every job a previous process left open, with the key it was opened with.

    Entries of a journal that is still open (another process sharing the file, or another
    backend in this one) are left alone. An entry whose key is not among ``keys`` stays open
    (a later start with that key cancels it); one without a job id (the process died while
    requesting) cannot be cancelled and is closed as ``abandoned``: its worker ends at its
    idle or execution timeout. A job RunPod no longer knows is closed as ``gone``.
    """
    by_fingerprint = {key.fingerprint: key for key in keys}
    report: list[Recovery] = []
    for entry in journal.open_entries():
        if _owner_alive(entry.owner):
            continue  # a live swarmpod (another process, or another backend here) holds it
        if entry.job_id is None:
            journal.close(entry.id, "abandoned")
            report.append(
                Recovery(
                    entry,
                    False,
                    "died while requesting: no job id to cancel; it ends "
                    "at its endpoint's idle or execution timeout",
                )
            )
            continue
        key = by_fingerprint.get(entry.key_fingerprint)
        if key is None:
            report.append(
                Recovery(
                    entry,
                    False,
                    f"its key ({entry.key_fingerprint}) is not configured; "
                    "left open for a start that has it",
                )
            )
            continue
        try:
            await cancel(entry, key)
        except RunPodNotFoundError:
            journal.close(entry.id, "gone")
            report.append(Recovery(entry, False, "RunPod no longer knows the job"))
        except OrchestratorError as exc:
            report.append(Recovery(entry, False, f"cancel failed, left open: {exc}"))
        else:
            journal.close(entry.id, "recovered")
            report.append(Recovery(entry, True, "cancelled"))
    for item in report:
        log.warning(
            "[RunPodServerless] journal: %s job %s on %s from a previous run: %s",
            item.entry.protocol,
            item.entry.job_id,
            item.entry.endpoint_id,
            item.reason,
        )
    return report

"""The lease journal: every worker-holding job swarmpod opened, in the state store (a SQLite
file, or PostgreSQL shared by replicas), so none is orphaned.

An entry is written *before* the job is requested and closed when the job ends.
If the process dies in between, the next start (or, with PostgreSQL, any replica) finds the
entry still open and cancels the job with the key it was opened with (:func:`recover_leases`).
The store never holds a key: an entry keeps the key's fingerprint, and recovery looks the key
up among the keys it is given.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Final

from ..errors import OrchestratorError, RunPodNotFoundError
from ..secrets import Secret
from ..store import JOURNAL, StateStore, open_component

__all__ = ["JournalEntry", "LeaseJournal", "Recovery", "recover_leases"]

log = logging.getLogger("swarmpod.workers")

_COLUMNS: Final = (
    "id, endpoint_id, protocol, key_fingerprint, job_id, opened_at, closed_at, outcome, owner"
)


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
    """The journal in the state store (a SQLite file created 0600, or PostgreSQL).

    Each call is one short statement, committed before it returns, so an entry survives a
    crash right after the call. Open it with :meth:`open`.

    >>> import anyio
    >>> async def demo() -> None:
    ...     journal = await LeaseJournal.open(":memory:")
    ...     entry = await journal.begin("ep", "v2", Secret("rpa_KEY"))
    ...     await journal.attach(entry, "job-1")
    ...     print([e.job_id for e in await journal.open_entries()])
    ...     await journal.close(entry, "released")
    ...     print(await journal.open_entries())
    ...     await journal.close_file()
    >>> anyio.run(demo)
    ['job-1']
    []

    Attributes:
        store: the store it is kept in.
        owner: the mark its entries carry (the store's replica id): entries of an owner
            still alive are never recovered.
    """

    def __init__(self, store: StateStore, *, owns_store: bool = False) -> None:
        """Use :meth:`open` (it migrates the journal's tables)."""
        self.store = store
        self.owner = store.replica_id
        self._owns_store = owns_store

    @classmethod
    async def open(cls, where: StateStore | str | os.PathLike[str]) -> LeaseJournal:
        """The journal in ``where``: a store, or a SQLite file (opened, and closed with the
        journal).

        Raises:
            StateFileError: the SQLite file is unusable (left untouched).
            SchemaTooNewError: a newer swarmpod migrated the database.
        """
        store, owns = await open_component(where, JOURNAL)
        return cls(store, owns_store=owns)

    def __repr__(self) -> str:
        return f"LeaseJournal({self.store.description!r})"

    async def close_file(self) -> None:
        """Close the store it opened (a store it was given stays open); its open entries
        become orphans to recover."""
        if self._owns_store:
            await self.store.close()

    async def begin(self, endpoint_id: str, protocol: str, key: Secret) -> int:
        """Write an open entry before requesting the job; returns the entry id."""
        return await self.store.insert(
            "INSERT INTO leases (endpoint_id, protocol, key_fingerprint, owner) "
            "VALUES (?, ?, ?, ?)",
            (endpoint_id, protocol, key.fingerprint, self.owner),
        )

    async def attach(self, entry_id: int, job_id: str) -> None:
        """Record the job id RunPod gave the request."""
        await self.store.execute("UPDATE leases SET job_id = ? WHERE id = ?", (job_id, entry_id))

    async def close(self, entry_id: int, outcome: str) -> None:
        """Close an entry: its job has ended (or was never created)."""
        await self.store.execute(
            f"UPDATE leases SET closed_at = {self.store.dialect.now}, outcome = ? "
            "WHERE id = ? AND closed_at IS NULL",
            (outcome, entry_id),
        )

    async def claim(self, entry: JournalEntry) -> bool:
        """Make an orphan entry this journal's, if it still is the orphan it was (open, with
        the same owner): of several replicas recovering at once, one wins each entry."""
        changed = await self.store.execute(
            "UPDATE leases SET owner = ? "
            "WHERE id = ? AND closed_at IS NULL AND COALESCE(owner, '') = ?",
            (self.owner, entry.id, entry.owner or ""),
        )
        return changed == 1

    async def unclaim(self, entry: JournalEntry) -> None:
        """Give a claimed entry back to its dead owner (its job could not be cancelled now:
        a later recovery tries again)."""
        await self.store.execute(
            "UPDATE leases SET owner = ? WHERE id = ? AND closed_at IS NULL AND owner = ?",
            (entry.owner, entry.id, self.owner),
        )

    async def open_entries(self, endpoint_id: str | None = None) -> list[JournalEntry]:
        """Entries not closed yet (all endpoints, or one), oldest first."""
        query = f"SELECT {_COLUMNS} FROM leases WHERE closed_at IS NULL"
        params: tuple[str, ...] = ()
        if endpoint_id is not None:
            query += " AND endpoint_id = ?"
            params = (endpoint_id,)
        rows = await self.store.fetchall(query + " ORDER BY id", params)
        return [JournalEntry(*row) for row in rows]

    async def remember_protocol(self, endpoint_id: str, protocol: str) -> None:
        """Remember the worker protocol an endpoint was found to speak (``auto``)."""
        now = self.store.dialect.now
        await self.store.execute(
            f"INSERT INTO endpoint_protocols (endpoint_id, protocol, detected_at) "
            f"VALUES (?, ?, {now}) "
            "ON CONFLICT (endpoint_id) DO UPDATE SET protocol = excluded.protocol, "
            "detected_at = excluded.detected_at",
            (endpoint_id, protocol),
        )

    async def known_protocol(self, endpoint_id: str) -> tuple[str, dt.datetime] | None:
        """The protocol remembered for an endpoint and when it was found (UTC), if any."""
        row = await self.store.fetchone(
            "SELECT protocol, detected_at FROM endpoint_protocols WHERE endpoint_id = ?",
            (endpoint_id,),
        )
        if row is None:
            return None
        detected = dt.datetime.fromisoformat(str(row[1]).replace("Z", "+00:00"))
        return str(row[0]), detected

    async def entry(self, entry_id: int) -> JournalEntry:
        """One entry by id (KeyError if there is none)."""
        row = await self.store.fetchone(f"SELECT {_COLUMNS} FROM leases WHERE id = ?", (entry_id,))
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

    Entries of a journal that is still open (another process sharing the file, another
    backend in this one, or with PostgreSQL a replica whose heartbeat is fresh) are left
    alone; each orphan is claimed before it is cancelled, so of replicas recovering at once
    only one cancels it. An entry whose key is not among ``keys`` stays open
    (a later start with that key cancels it); one without a job id (the process died while
    requesting) cannot be cancelled and is closed as ``abandoned``: its worker ends at its
    idle or execution timeout. A job RunPod no longer knows is closed as ``gone``.
    """
    by_fingerprint = {key.fingerprint: key for key in keys}
    report: list[Recovery] = []
    alive: dict[str | None, bool] = {}
    for entry in await journal.open_entries():
        if entry.owner not in alive:
            alive[entry.owner] = await journal.store.owner_alive(entry.owner)
        if alive[entry.owner]:
            continue  # a live swarmpod (another process, or another backend here) holds it
        key = by_fingerprint.get(entry.key_fingerprint)
        if (entry.job_id is None or key is not None) and not await journal.claim(entry):
            continue  # another replica recovers it right now
        if entry.job_id is None:
            await journal.close(entry.id, "abandoned")
            report.append(
                Recovery(
                    entry,
                    False,
                    "died while requesting: no job id to cancel; it ends "
                    "at its endpoint's idle or execution timeout",
                )
            )
            continue
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
            await journal.close(entry.id, "gone")
            report.append(Recovery(entry, False, "RunPod no longer knows the job"))
        except OrchestratorError as exc:
            await journal.unclaim(entry)
            report.append(Recovery(entry, False, f"cancel failed, left open: {exc}"))
        else:
            await journal.close(entry.id, "recovered")
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

"""The shared pool's rows in PostgreSQL: what every replica reads and writes, as statements.

One :class:`PoolTable` per pool (an endpoint and a key's fingerprint). Each write that
changes a worker's row also says so on the ``swarmpod_pool`` channel (``NOTIFY``, delivered
when the transaction commits) with the row as it now is, so every replica's view follows
without polling.

Who may do what:

- any replica takes a seat on a warm worker of the pool (:meth:`PoolTable.take`: one
  statement that picks the row, checks and counts the seat, and records whose it is) and
  gives it back (:meth:`PoolTable.give_back`);
- a worker is asked for only under the endpoint's cluster-wide ``MaxWorkers``, in a
  transaction holding the endpoint's advisory lock (:meth:`PoolTable.request`);
- only the replica that owns a worker's runner writes its chart state, and only it releases
  it, once the row says no seat is taken (:meth:`PoolTable.claim_release`: the moment after
  which nobody can take a seat on it).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from ..store import Statements, StateStore
from ._scaling import late_after, servable_before

__all__ = [
    "CHANNEL",
    "ROW_COLUMNS",
    "PoolTable",
    "SeatTaken",
    "WorkerRow",
    "pool_key",
    "prefixed",
    "tell",
]

CHANNEL: Final = "swarmpod_pool"
"""The notification channel of every pool."""

WARM_STATES: Final = ("idle", "busy")
"""States in which a worker takes generations."""
COMING_STATES: Final = ("requested", "queued", "booting", "loading")
"""States of a worker asked for and on its way."""

ROW_COLUMNS: Final = (
    "id, owner, state, capacity, busy, worker_id, job_id, public_url, sealed, protocol, "
    "warm_at, idle_since, hold_s, endpoint_id, key_fingerprint"
)
"""The columns a :class:`WorkerRow` is made of, in order."""
_ROW: Final = ROW_COLUMNS


def pool_key(endpoint_id: str, key_fingerprint: str) -> str:
    """How a pool is named on the channel: ``endpoint|fingerprint``."""
    return f"{endpoint_id}|{key_fingerprint}"


@dataclass(frozen=True)
class WorkerRow:
    """One worker of the shared pool, as its row says.

    Attributes:
        id: the row's id (the worker's id in the cluster).
        owner: the replica that runs its runner (decides its idle window and its release).
        state: its chart's state (``requested`` ... ``idle``/``busy`` ... ``draining``).
        capacity: generations it runs at once (expected, until it is warm).
        busy: seats taken on it, by every replica.
        worker_id: RunPod's worker id, once handed over.
        job_id: the job that holds it.
        public_url: its SwarmUI, once warm.
        sealed: its gateway token and SwarmUI session, encrypted with the master key.
        protocol: ``v1`` or ``v2``.
        warm_at: when it became warm (UTC), None before.
        idle_since: when its last seat was freed (UTC; its warm time until one was).
        hold_s: how long it stays warm at least (prewarm).
        endpoint_id: the endpoint.
        key_fingerprint: the fingerprint of the key its job was requested with.
    """

    id: int
    owner: str
    state: str
    capacity: int
    busy: int
    worker_id: str | None
    job_id: str | None
    public_url: str | None
    sealed: bytes | None
    protocol: str
    warm_at: dt.datetime | None
    idle_since: dt.datetime | None
    hold_s: float
    endpoint_id: str
    key_fingerprint: str

    @classmethod
    def of(cls, row: Sequence[Any]) -> WorkerRow:
        """A row selected as :data:`ROW_COLUMNS` lists its columns."""
        values = list(row)
        values[8] = bytes(values[8]) if values[8] is not None else None
        return cls(*values)

    @property
    def warm(self) -> bool:
        """It takes generations."""
        return self.state in WARM_STATES

    @property
    def coming(self) -> bool:
        """It was asked for and is on its way."""
        return self.state in COMING_STATES

    @property
    def free(self) -> int:
        """Seats a generation could take now."""
        return max(0, self.capacity - self.busy) if self.warm else 0

    @property
    def pool(self) -> str:
        """The name of its pool (:func:`pool_key`)."""
        return pool_key(self.endpoint_id, self.key_fingerprint)

    def news(self, event: str = "row") -> str:
        """The notification that tells every replica of this row (no secret in it)."""
        return json.dumps(
            {
                "p": self.pool,
                "e": event,
                "w": self.id,
                "o": self.owner,
                "s": self.state,
                "c": self.capacity,
                "b": self.busy,
            }
        )


@dataclass(frozen=True)
class SeatTaken:
    """A seat this replica took: on which worker, and the seat's own id.

    Attributes:
        row: the worker's row right after the seat was counted.
        seat_id: the seat's row (given back by it).
    """

    row: WorkerRow
    seat_id: int


class PoolTable:
    """The statements of one shared pool.

    Args:
        store: the PostgreSQL store.
        endpoint_id: the endpoint.
        key_fingerprint: the fingerprint of the key the pool's workers are held with.
        replica_id: this replica (owner of the workers it asks for, holder of its seats).
    """

    def __init__(
        self, store: StateStore, *, endpoint_id: str, key_fingerprint: str, replica_id: str
    ) -> None:
        self.store = store
        self.endpoint_id = endpoint_id
        self.key_fingerprint = key_fingerprint
        self.replica_id = replica_id
        self.key = pool_key(endpoint_id, key_fingerprint)

    # --- reading --------------------------------------------------------------------------

    async def rows(self) -> list[WorkerRow]:
        """Every worker of the pool, oldest first."""
        found = await self.store.fetchall(
            f"SELECT {_ROW} FROM pool_workers "
            "WHERE endpoint_id = ? AND key_fingerprint = ? ORDER BY id",
            (self.endpoint_id, self.key_fingerprint),
        )
        return [WorkerRow.of(row) for row in found]

    async def row(self, worker: int) -> WorkerRow | None:
        """One worker's row, if it still is."""
        found = await self.store.fetchone(
            f"SELECT {_ROW} FROM pool_workers WHERE id = ?", (worker,)
        )
        return None if found is None else WorkerRow.of(found)

    # --- seats ----------------------------------------------------------------------------

    async def take(self) -> SeatTaken | None:
        """Take a seat on a warm worker of the pool, if one has a free seat.

        One statement picks the worker (the busiest first, then the most recently used: the
        others idle out sooner), counts the seat and records it as this replica's; a worker
        another replica is taking a seat on at that instant is skipped, not waited for.
        """
        async with self.store.transaction() as tx:
            found = await tx.fetchone(
                "WITH chosen AS ("
                "  SELECT id FROM pool_workers"
                "  WHERE endpoint_id = ? AND key_fingerprint = ?"
                "    AND state IN ('idle', 'busy') AND busy < capacity"
                "  ORDER BY busy DESC, idle_since DESC NULLS LAST, id"
                "  LIMIT 1 FOR UPDATE SKIP LOCKED"
                "), counted AS ("
                "  UPDATE pool_workers AS w SET busy = w.busy + 1, state = 'busy',"
                "    updated_at = now()"
                f"  FROM chosen WHERE w.id = chosen.id RETURNING {prefixed('w')}"
                "), seat AS ("
                "  INSERT INTO pool_seats (worker, replica) SELECT id, ? FROM counted"
                "  RETURNING id"
                f") SELECT {prefixed('counted')}, seat.id FROM counted, seat",
                (self.endpoint_id, self.key_fingerprint, self.replica_id),
            )
            if found is None:
                return None
            row = WorkerRow.of(found[:-1])
            await self._tell(tx, row)
        return SeatTaken(row, int(found[-1]))

    async def seats_free_somewhere(self) -> bool:
        """Whether a warm worker has a free seat (a take that found none raced another)."""
        found = await self.store.fetchone(
            "SELECT 1 FROM pool_workers WHERE endpoint_id = ? AND key_fingerprint = ? "
            "AND state IN ('idle', 'busy') AND busy < capacity LIMIT 1",
            (self.endpoint_id, self.key_fingerprint),
        )
        return found is not None

    async def give_back(self, seat_id: int, *, retire: bool = False) -> WorkerRow | None:
        """Give a seat back (``retire``: the worker stopped answering: no new seats on it).

        The worker's last seat freed makes it idle from now (the database's clock).
        """
        async with self.store.transaction() as tx:
            found = await tx.fetchone(
                "WITH freed AS (DELETE FROM pool_seats WHERE id = ? RETURNING worker) "
                "UPDATE pool_workers AS w SET busy = w.busy - 1, updated_at = now(), "
                "  idle_since = CASE WHEN w.busy = 1 THEN now() ELSE w.idle_since END, "
                "  state = CASE WHEN ? AND w.state IN ('idle', 'busy') THEN 'retiring' "
                "    WHEN w.busy = 1 AND w.state = 'busy' THEN 'idle' ELSE w.state END "
                f"FROM freed WHERE w.id = freed.worker RETURNING {prefixed('w')}",
                (seat_id, retire),
            )
            if found is None:
                return None  # the worker is gone already (released, or its replica died)
            row = WorkerRow.of(found)
            await self._tell(tx, row)
        return row

    # --- the owner's side -----------------------------------------------------------------

    async def request(
        self,
        wanted: int,
        *,
        demand_fallback: int,
        max_workers: int,
        capacity: int,
        protocol: str,
        hold_s: float = 0.0,
        floor: int = 0,
        ready_in_s: float = 0.0,
        generation_s: float | None = None,
    ) -> list[WorkerRow]:
        """Ask for the workers the pool needs, under the endpoint's cluster-wide MaxWorkers.

        In one transaction holding the endpoint's advisory lock: the generations waiting at
        every replica (``pool_demand``; this replica's own count is ``demand_fallback`` until
        written), less those the seats serve before a worker asked for now would be ready
        (``ready_in_s``; :func:`servable_before`: free seats now, busy ones when their
        generation is expected to end unless it is late, the coming workers' when they are
        expected ready); the shortfall in workers of
        ``capacity`` seats, at least ``wanted`` (prewarm) or the ``floor``, at most what the
        endpoint's MaxWorkers leaves. The rows made are this replica's to run.
        """
        async with self.store.transaction() as tx:
            await tx.lock(f"swarmpod pool {self.endpoint_id}")
            live_row = await tx.fetchone(
                "SELECT count(*) FROM pool_workers WHERE endpoint_id = ?", (self.endpoint_id,)
            )
            live = int(live_row[0]) if live_row else 0
            aged = [
                (WorkerRow.of(row[:-1]), float(row[-1]))
                for row in await tx.fetchall(
                    f"SELECT {_ROW}, EXTRACT(EPOCH FROM now() - requested_at) FROM pool_workers "
                    "WHERE endpoint_id = ? AND key_fingerprint = ?",
                    (self.endpoint_id, self.key_fingerprint),
                )
            ]
            rows = [row for row, _ in aged]
            waiting = await self._demand(tx, demand_fallback)
            seats = await self._seats_free_in(tx, aged, ready_in_s, generation_s)
            served = servable_before(ready_in_s, seats, generation_s)
            shortfall = max(0, math.ceil((waiting - served) / max(1, capacity)))
            warm_or_coming = sum(1 for row in rows if row.warm or row.coming)
            count = max(shortfall, wanted, floor - warm_or_coming)
            count = max(0, min(count, max_workers - live))
            made: list[WorkerRow] = []
            for _ in range(count):
                found = await tx.fetchone(
                    "INSERT INTO pool_workers (endpoint_id, key_fingerprint, protocol, owner, "
                    "state, capacity, hold_s) VALUES (?, ?, ?, ?, 'requested', ?, ?) "
                    f"RETURNING {_ROW}",
                    (
                        self.endpoint_id,
                        self.key_fingerprint,
                        protocol,
                        self.replica_id,
                        capacity,
                        hold_s,
                    ),
                )
                assert found is not None
                row = WorkerRow.of(found)
                made.append(row)
                await self._tell(tx, row)
        return made

    async def _seats_free_in(
        self,
        tx: Statements,
        aged: list[tuple[WorkerRow, float]],
        ready_in_s: float,
        generation_s: float | None,
    ) -> list[tuple[float, int]]:
        """(seconds from now, seats) pairs: when the seats of the pool's workers (each with
        the seconds since it was asked for) free or arrive."""
        seats: list[tuple[float, int]] = []
        for row, age in aged:
            if row.coming:
                seats.append((max(0.0, ready_in_s - age), row.capacity))
            elif row.state in ("idle", "busy"):
                seats.append((0.0, row.free))
        if not any(row.busy for row, _ in aged):
            return seats
        expected = generation_s if generation_s is not None else 0.0
        late = late_after(expected) if generation_s is not None else math.inf
        for (taken_age,) in await tx.fetchall(
            "SELECT EXTRACT(EPOCH FROM now() - s.taken_at) FROM pool_seats AS s "
            "JOIN pool_workers AS w ON w.id = s.worker "
            "WHERE w.endpoint_id = ? AND w.key_fingerprint = ? AND w.state IN ('idle', 'busy')",
            (self.endpoint_id, self.key_fingerprint),
        ):
            if float(taken_age) < late:  # a late one may run on for long
                seats.append((max(0.0, expected - float(taken_age)), 1))
        return seats

    async def set_state(self, worker: int, state: str, *, job_id: str | None = None) -> None:
        """The owner writes its worker's chart state (and the job, once known)."""
        async with self.store.transaction() as tx:
            found = await tx.fetchone(
                "UPDATE pool_workers SET state = ?, job_id = COALESCE(?, job_id), "
                "updated_at = now() WHERE id = ? AND owner = ? AND state <> 'draining' "
                f"RETURNING {_ROW}",
                (state, job_id, worker, self.replica_id),
            )
            if found is not None:
                await self._tell(tx, WorkerRow.of(found))

    async def mark_warm(
        self,
        worker: int,
        *,
        capacity: int,
        worker_id: str,
        job_id: str | None,
        public_url: str,
        sealed: bytes,
    ) -> None:
        """The owner's worker is warm: its seats are open to every replica."""
        async with self.store.transaction() as tx:
            found = await tx.fetchone(
                "UPDATE pool_workers SET state = CASE WHEN busy > 0 THEN 'busy' ELSE 'idle' END, "
                "capacity = ?, worker_id = ?, job_id = COALESCE(?, job_id), public_url = ?, "
                "sealed = ?, warm_at = now(), idle_since = now(), updated_at = now() "
                f"WHERE id = ? AND owner = ? RETURNING {_ROW}",
                (capacity, worker_id, job_id, public_url, sealed, worker, self.replica_id),
            )
            if found is not None:
                await self._tell(tx, WorkerRow.of(found))

    async def claim_release(self, worker: int, *, retiring: bool) -> bool:
        """The owner's decision to release an idle worker, taken in the database: it holds
        only if no seat is taken on it now; from then on none can be."""
        async with self.store.transaction() as tx:
            found = await tx.fetchone(
                "UPDATE pool_workers SET state = 'draining', updated_at = now() "
                "WHERE id = ? AND owner = ? AND busy = 0 AND state IN (?, ?) "
                f"RETURNING {_ROW}",
                (worker, self.replica_id, "idle", "retiring" if retiring else "idle"),
            )
            if found is None:
                return False
            await self._tell(tx, WorkerRow.of(found))
        return True

    async def remove(self, worker: int) -> None:
        """The worker's life ended (released or lost): its row goes, with any seat on it."""
        async with self.store.transaction() as tx:
            found = await tx.fetchone(
                f"DELETE FROM pool_workers WHERE id = ? RETURNING {_ROW}", (worker,)
            )
            if found is not None:
                await self._tell(tx, WorkerRow.of(found), event="gone")

    async def set_demand(self, waiting: int) -> None:
        """How many generations wait for a seat at this replica."""
        if waiting:
            await self.store.execute(
                "INSERT INTO pool_demand (replica, endpoint_id, key_fingerprint, waiting) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (replica, endpoint_id, key_fingerprint) "
                "DO UPDATE SET waiting = excluded.waiting",
                (self.replica_id, self.endpoint_id, self.key_fingerprint, waiting),
            )
        else:
            await self.store.execute(
                "DELETE FROM pool_demand WHERE replica = ? AND endpoint_id = ? "
                "AND key_fingerprint = ?",
                (self.replica_id, self.endpoint_id, self.key_fingerprint),
            )

    # --- internals ------------------------------------------------------------------------

    async def _demand(self, tx: Statements, own: int) -> int:
        rows = await tx.fetchall(
            "SELECT replica, waiting FROM pool_demand "
            "WHERE endpoint_id = ? AND key_fingerprint = ?",
            (self.endpoint_id, self.key_fingerprint),
        )
        others = sum(int(waiting) for replica, waiting in rows if replica != self.replica_id)
        return others + own

    async def _tell(self, tx: Statements, row: WorkerRow, *, event: str = "row") -> None:
        await tell(tx, row, event=event)


async def tell(tx: Statements, row: WorkerRow, *, event: str = "row") -> None:
    """Announce ``row`` to every replica (delivered when the transaction commits)."""
    await tx.execute("SELECT pg_notify(?, ?)", (CHANNEL, row.news(event)))


def prefixed(table: str) -> str:
    """:data:`ROW_COLUMNS`, each qualified by ``table``."""
    return ", ".join(f"{table}.{column.strip()}" for column in ROW_COLUMNS.split(","))

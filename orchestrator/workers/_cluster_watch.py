"""Replica death in the shared pool: found by heartbeat, its workers adopted or released once.

Every replica heartbeats (``PostgresStore``). Each replica's watch looks, four times per
heartbeat interval, for a replica of its endpoint's pool that stopped (cleanly, with workers
it handed over) or whose heartbeat is older than 1.5 of its intervals, and then, each step
atomic so that of several replicas watching only one acts on each thing:

1. marks it stopped (if it was only slow, its next heartbeat finds it evicted: it hands its
   workers over and stops driving them);
2. drops its seats (its generations died with it: their callers' connections dropped), the
   workers they were on idle since its last heartbeat;
3. drops the generations it had waiting;
4. claims its workers held with a key this replica has: a warm one is adopted (held, watched,
   released after its idle window by this replica, its journal entry claimed with it), one not
   warm yet is cancelled and its row removed;
5. cancels whatever its journal still holds open (``recover_leases``, claim before cancel).

A worker is claimed by one replica (``UPDATE ... WHERE owner = <dead> RETURNING``), and
released by its one owner: none is released twice.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final

import anyio

from ..errors import DatabaseError, OrchestratorError
from ..runpod import Job
from ._cluster_table import ROW_COLUMNS, WARM_STATES, WorkerRow, prefixed, tell
from ._handle import WakeReceipt, WorkerHandle

if TYPE_CHECKING:
    from ..store import PostgresStore
    from ._cluster_pool import ClusterPool
    from ._journal import LeaseJournal

__all__ = ["ReplicaWatch"]

log = logging.getLogger("swarmpod.workers")

_DEAD_AFTER_HEARTBEATS: Final = 1.5
_LOOKS_PER_HEARTBEAT: Final = 4

PoolFor = Callable[[str], Awaitable["ClusterPool | None"]]
"""The shared pool of this endpoint for a key fingerprint, if this replica has that key."""
Recover = Callable[[], Awaitable[object]]
"""Cancel what dead replicas' journal entries hold open (with every key this replica has)."""


class ReplicaWatch:
    """Finds the dead replicas of one endpoint's shared pool and takes over after them.

    Args:
        store: the PostgreSQL store (this replica's heartbeat and id).
        journal: the lease journal (claims of adopted workers' entries).
        endpoint_id: the endpoint whose pool it watches.
        fingerprints: the fingerprints of the keys this replica has (the others' workers are
            left for a replica that has their key).
        pool_for: the shared pool of a fingerprint.
        recover: cancels what dead replicas left in the journal.
    """

    def __init__(
        self,
        store: PostgresStore,
        journal: LeaseJournal,
        *,
        endpoint_id: str,
        fingerprints: Callable[[], set[str]],
        pool_for: PoolFor,
        recover: Recover,
    ) -> None:
        self._store = store
        self._journal = journal
        self._endpoint_id = endpoint_id
        self._fingerprints = fingerprints
        self._pool_for = pool_for
        self._recover = recover
        self.took_over: list[tuple[str, float]] = []
        """(dead replica, loop time) each time this watch took over after one."""

    async def run(self) -> None:
        """Look for dead replicas until cancelled."""
        pause = self._store.heartbeat_s / _LOOKS_PER_HEARTBEAT
        while True:
            try:
                await self.look()
            except DatabaseError as exc:
                log.warning("[RunPodServerless] watching the replicas: %s", exc)
            await anyio.sleep(pause)

    async def look(self) -> list[str]:
        """One look: take over after every dead replica found; returns them."""
        me = self._store.replica_id
        rows = await self._store.fetchall(
            "SELECT r.id, r.heartbeat_at FROM replicas r WHERE r.id <> ? AND ("
            "  r.stopped_at IS NOT NULL"
            "  OR r.heartbeat_at < now() - make_interval(secs => r.interval_s * ?)"
            ") AND ("
            "  r.id IN (SELECT owner FROM pool_workers WHERE endpoint_id = ?)"
            "  OR r.id IN (SELECT s.replica FROM pool_seats s"
            "    JOIN pool_workers w ON w.id = s.worker WHERE w.endpoint_id = ?)"
            "  OR r.id IN (SELECT replica FROM pool_demand WHERE endpoint_id = ?)"
            ")",
            (me, _DEAD_AFTER_HEARTBEATS, self._endpoint_id, self._endpoint_id, self._endpoint_id),
        )
        dead = [str(row[0]) for row in rows]
        for replica in dead:
            await self._take_over(replica)
        if dead:
            await self._recover()
        return dead

    async def _take_over(self, dead: str) -> None:
        store = self._store
        async with store.transaction() as tx:
            await tx.execute(
                "UPDATE replicas SET stopped_at = now() WHERE id = ? AND stopped_at IS NULL",
                (dead,),
            )
            freed = await tx.fetchall(
                "WITH gone AS ("
                "  DELETE FROM pool_seats s USING pool_workers w"
                "  WHERE s.worker = w.id AND w.endpoint_id = ? AND s.replica = ?"
                "  RETURNING s.worker"
                "), counts AS (SELECT worker, count(*) AS n FROM gone GROUP BY worker),"
                " last AS (SELECT heartbeat_at FROM replicas WHERE id = ?)"
                " UPDATE pool_workers AS w SET busy = w.busy - counts.n, updated_at = now(),"
                "  idle_since = CASE WHEN w.busy = counts.n"
                "    THEN GREATEST(w.idle_since, (SELECT heartbeat_at FROM last))"
                "    ELSE w.idle_since END,"
                "  state = CASE WHEN w.busy = counts.n AND w.state = 'busy' THEN 'idle'"
                "    ELSE w.state END"
                f" FROM counts WHERE w.id = counts.worker RETURNING {prefixed('w')}",
                (self._endpoint_id, dead, dead),
            )
            await tx.execute(
                "DELETE FROM pool_demand WHERE replica = ? AND endpoint_id = ?",
                (dead, self._endpoint_id),
            )
            for found in freed:
                await tell(tx, WorkerRow.of(found))
        fingerprints = sorted(self._fingerprints())
        if not fingerprints:
            return
        marks = ", ".join("?" for _ in fingerprints)
        claimed = await store.fetchall(
            f"UPDATE pool_workers SET owner = ?, updated_at = now() "
            f"WHERE owner = ? AND endpoint_id = ? AND key_fingerprint IN ({marks}) "
            f"RETURNING {ROW_COLUMNS}, "
            "EXTRACT(EPOCH FROM (now() - requested_at)), "
            "EXTRACT(EPOCH FROM (now() - COALESCE(idle_since, now())))",
            (store.replica_id, dead, self._endpoint_id, *fingerprints),
        )
        for found in claimed:
            row = WorkerRow.of(found[:-2])
            age_s, idle_for_s = float(found[-2]), float(found[-1])
            await self._take(row, age_s=age_s, idle_for_s=idle_for_s)
        self.took_over.append((dead, anyio.current_time()))
        log.warning(
            "[RunPodServerless] replica %s stopped heartbeating: took over its %d worker(s)",
            dead,
            len(claimed),
        )

    async def _take(self, row: WorkerRow, *, age_s: float, idle_for_s: float) -> None:
        pool = await self._pool_for(row.key_fingerprint)
        entry = await self._claim_entry(row.job_id)
        warm = row.state in (*WARM_STATES, "retiring")
        if (
            pool is not None
            and warm
            and row.job_id is not None
            and not await self._ended(pool, row)
        ):
            if entry is None:  # no entry open for its job: this replica journals it now
                entry = await pool.journal_job(row.job_id)
            if pool.adopt(row, age_s=age_s, idle_for_s=idle_for_s, journal_entry=entry):
                return
        await self._release(row, pool, entry)

    async def _ended(self, pool: ClusterPool, row: WorkerRow) -> bool:
        """Whether its job ended already (its owner released it just before it died)."""
        assert row.job_id is not None
        try:
            return await pool.job_ended(row.job_id)
        except OrchestratorError as exc:
            log.warning("[RunPodServerless] status of worker %s: %s", row.worker_id, exc)
            return False

    async def _claim_entry(self, job_id: str | None) -> int | None:
        if job_id is None:
            return None
        found = await self._store.fetchone(
            "UPDATE leases SET owner = ? WHERE job_id = ? AND closed_at IS NULL RETURNING id",
            (self._store.replica_id, job_id),
        )
        return None if found is None else int(found[0])

    async def _release(self, row: WorkerRow, pool: ClusterPool | None, entry: int | None) -> None:
        """A dead replica's worker that cannot be adopted: cancel its job, drop its row."""
        released = False
        if pool is not None and row.job_id is not None:
            handle = WorkerHandle(
                receipt=WakeReceipt(row.worker_id or "?", row.public_url or "", None, None, None),
                protocol=row.protocol,
                hold_job_id=row.job_id,
            )
            job = Job(id=row.job_id, status="IN_PROGRESS")
            try:
                with anyio.move_on_after(30):
                    # its owner may have sent the cancel already (it was draining): once is
                    # enough; a job that ended needs none
                    if await pool.job_ended(row.job_id):
                        released = True
                    else:
                        released = (await pool.release_job(job, handle)).confirmed
            except OrchestratorError as exc:
                log.warning("[RunPodServerless] cancelling worker %s: %s", row.worker_id, exc)
        if entry is not None and released:
            await self._journal.close(entry, "recovered")
        if entry is not None and not released:
            await self._store.execute(
                "UPDATE leases SET owner = NULL WHERE id = ? AND closed_at IS NULL", (entry,)
            )  # left open, owned by nobody alive: the next recovery cancels it
        if pool is not None:
            await pool.table.remove(row.id)
        else:
            await self._store.execute("DELETE FROM pool_workers WHERE id = ?", (row.id,))
        log.info(
            "[RunPodServerless] worker %s of a dead replica %s",
            row.worker_id or row.job_id,
            "released" if released else "left to the journal's recovery",
        )

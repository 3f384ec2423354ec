"""One replica's side of the shared pools of one endpoint: the announcements it hears, the
watch over the other replicas, the master key that seals workers' tokens, the keys it holds.

An :class:`~orchestrator.Orchestrator` on a PostgreSQL store (``DatabaseUrl``) makes one
:class:`SharedPools`: its lease pools (``WorkerProtocol = v2``, or ``auto`` once the endpoint
is known to speak v2) are then :class:`~orchestrator.workers._cluster_pool.ClusterPool` s,
shared with every replica. See ``_cluster_pool`` for the design.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING

import anyio.abc

from ..secrets import Secret
from ..store import POOL, migrate
from ._cluster_bus import PoolBus
from ._cluster_pool import ClusterPool
from ._cluster_watch import ReplicaWatch
from ._idle import IdleWindow
from ._journal import LeaseJournal
from ._observer import ObserveWorker
from ._runner import RunnerTimes, SwarmFactory
from ._v2 import V2Protocol

if TYPE_CHECKING:
    from ..store import PostgresStore

__all__ = ["SharedPools"]

log = logging.getLogger("swarmpod.workers")

StationOf = Callable[[Secret], Awaitable[object]]
"""Opens (or finds) this replica's station of the endpoint for a key."""


class SharedPools:
    """One replica's side of an endpoint's shared pools.

    Args:
        store: the PostgreSQL store.
        journal: the lease journal (in it).
        endpoint_id: the endpoint.
        station_of: opens this replica's station for a key (a shared pool, for v2).
        recover: cancels what dead replicas' journal entries hold open, with the keys known.
        env: where ``SWARMPOD_MASTER_KEY`` is read (default ``os.environ``).

    Raises:
        MasterKeyError: ``SWARMPOD_MASTER_KEY`` is not set (every replica needs the same one:
            it seals the workers' gateway tokens in the shared table).
        MissingExtraError: cryptography is not installed.
    """

    def __init__(
        self,
        store: PostgresStore,
        journal: LeaseJournal,
        *,
        endpoint_id: str,
        station_of: StationOf,
        recover: Callable[[list[Secret]], Awaitable[object]],
        env: Mapping[str, str] | None = None,
    ) -> None:
        from ..accounts._master_key import load_master_key  # the service extra (cryptography)

        self.store = store
        self.journal = journal
        self.endpoint_id = endpoint_id
        self.master = load_master_key(
            os.environ if env is None else env,
            None,
            database=store.description,
            may_create=False,
        )
        self.bus = PoolBus(store)
        self._station_of = station_of
        self._recover = recover
        self._keys: dict[str, Secret] = {}
        self._pools: dict[str, ClusterPool] = {}
        self.watch = ReplicaWatch(
            store,
            journal,
            endpoint_id=endpoint_id,
            fingerprints=lambda: set(self._keys),
            pool_for=self._pool_for,
            recover=lambda: self._recover(list(self._keys.values())),
        )

    def __repr__(self) -> str:
        return f"SharedPools({self.endpoint_id!r}, replica={self.store.replica_id!r})"

    def know(self, keys: Iterable[Secret]) -> None:
        """Keys this replica holds: the workers of a dead replica held with one of them are
        taken over here."""
        for key in keys:
            self._keys.setdefault(key.fingerprint, key)

    async def start(self, tasks: anyio.abc.TaskGroup) -> None:
        """Migrate the pool's tables; listen for announcements and watch the other replicas,
        in ``tasks``.

        Raises:
            SchemaTooNewError: a newer swarmpod migrated the pool's tables.
        """
        await migrate(self.store, POOL)
        await tasks.start(self.bus.run)
        tasks.start_soon(self.watch.run)

    def pool(
        self,
        protocol: V2Protocol,
        *,
        key: Secret,
        idle: IdleWindow,
        max_workers: int,
        times: RunnerTimes,
        swarm_for: SwarmFactory,
        on_confirmed: Callable[[str], None] | None,
        observe: ObserveWorker | None,
    ) -> ClusterPool:
        """The shared lease pool of ``key`` (not started: serve it in a task group)."""
        self.know([key])
        pool = ClusterPool(
            protocol,
            store=self.store,
            bus=self.bus,
            master=self.master,
            key=key,
            endpoint_id=self.endpoint_id,
            idle=idle,
            max_workers=max_workers,
            times=times,
            swarm_for=swarm_for,
            journal=self.journal,
            on_confirmed=on_confirmed,
            observe=observe,
        )
        self._pools[key.fingerprint] = pool
        return pool

    async def _pool_for(self, fingerprint: str) -> ClusterPool | None:
        pool = self._pools.get(fingerprint)
        if pool is not None:
            return pool
        key = self._keys.get(fingerprint)
        if key is None:
            return None
        station = await self._station_of(key)
        return station if isinstance(station, ClusterPool) else self._pools.get(fingerprint)

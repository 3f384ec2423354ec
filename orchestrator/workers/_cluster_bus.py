"""What the shared pool's replicas tell each other, heard on one ``LISTEN`` connection.

Every write to a pool's row is announced on the ``swarmpod_pool`` channel (``NOTIFY`` at
commit). A replica keeps one listening connection (:class:`PoolBus`) and hands each
announcement to the pool it names; waiters are woken by these, never by polling. If the
connection drops, announcements may have been missed: every pool is told to look again
(:meth:`ClusterListener.resync`) once it is back.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, Final, Protocol

import anyio
import anyio.abc

from ..errors import DatabaseError
from ._cluster_table import CHANNEL

if TYPE_CHECKING:
    from ..store import PostgresStore

__all__ = ["ClusterListener", "PoolBus", "PoolNews"]

log = logging.getLogger("swarmpod.workers")

_RECONNECT_S: Final = 1.0


class PoolNews:
    """One announcement: a worker's row changed (``row``) or went (``gone``).

    Attributes:
        pool: the pool it belongs to.
        event: ``row`` or ``gone``.
        worker: the row's id.
        owner: the replica that runs the worker.
        state: its chart state.
        capacity: its seats.
        busy: seats taken.
    """

    __slots__ = ("busy", "capacity", "event", "owner", "pool", "state", "worker")

    def __init__(self, fields: dict[str, Any]) -> None:
        self.pool = str(fields["p"])
        self.event = str(fields["e"])
        self.worker = int(fields["w"])
        self.owner = str(fields["o"])
        self.state = str(fields["s"])
        self.capacity = int(fields["c"])
        self.busy = int(fields["b"])


class ClusterListener(Protocol):
    """A pool hearing the announcements of its name."""

    def heard(self, news: PoolNews) -> None:
        """A row of the pool changed or went."""

    def resync(self) -> None:
        """Announcements may have been missed: read the rows again."""


class PoolBus:
    """The replica's one listening connection, shared by its pools.

    Args:
        store: the PostgreSQL store (``listening``).
    """

    def __init__(self, store: PostgresStore) -> None:
        self._store = store
        self._listeners: dict[str, list[ClusterListener]] = {}
        self.connected = anyio.Event()

    def subscribe(self, pool: str, listener: ClusterListener) -> None:
        """Hand the announcements of ``pool`` to ``listener``."""
        self._listeners.setdefault(pool, []).append(listener)

    def unsubscribe(self, pool: str, listener: ClusterListener) -> None:
        """Stop handing them."""
        listeners = self._listeners.get(pool, [])
        if listener in listeners:
            listeners.remove(listener)

    async def run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Listen until cancelled, reconnecting (and telling every pool to look again) when
        the connection drops."""
        started = False
        while True:
            try:
                async with self._store.listening(CHANNEL) as payloads:
                    self.connected.set()
                    if not started:
                        started = True
                        task_status.started()
                    else:
                        self._resync()
                    async for payload in payloads:
                        self._dispatch(payload)
            except DatabaseError as exc:
                log.warning("[RunPodServerless] pool announcements: %s; reconnecting", exc)
            self.connected = anyio.Event()
            await anyio.sleep(_RECONNECT_S)

    def _dispatch(self, payload: str) -> None:
        try:
            news = PoolNews(json.loads(payload))
        except (ValueError, KeyError, TypeError):
            log.warning("[RunPodServerless] pool announcement not understood: %.200s", payload)
            return
        for listener in tuple(self._listeners.get(news.pool, ())):
            listener.heard(news)

    def _resync(self) -> None:
        for listeners in tuple(self._listeners.values()):
            for listener in tuple(listeners):
                listener.resync()

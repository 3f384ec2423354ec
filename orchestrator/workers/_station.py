"""Where a generation gets its worker: the station interface and ``WorkerProtocol = auto``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

import anyio

from ..errors import ProtocolMismatchError
from ._handle import Seat
from ._pool import PoolStatus, WorkerPool
from ._waiting import WaitingCallback

__all__ = ["AutoStation", "Station"]

log = logging.getLogger("swarmpod.workers")


class Station(Protocol):
    """Hands out seats on workers of one endpoint and key.

    A :class:`~orchestrator.workers._pool.WorkerPool` (v1 or v2) and :class:`AutoStation`
    are stations.
    """

    @property
    def protocol(self) -> str:
        """The worker protocol in use (``v1``, ``v2``)."""

    def try_take(self) -> Seat | None:
        """A seat on a free warm worker at once, or None."""

    async def acquire(self, report: WaitingCallback) -> Seat:
        """Wait for a seat (the caller bounds the wait), reporting why it waits."""

    async def give_back(self, seat: Seat, *, broken: bool = False) -> None:
        """Leave a seat; ``broken``: the worker stopped answering."""

    def prewarm(self, workers: int, *, hold_s: float | None = None) -> int:
        """Make sure ``workers`` workers are warm or coming; how many were asked for."""

    def set_floor(self, workers: int) -> None:
        """Keep at least ``workers`` workers (a prewarm schedule)."""

    def status(self) -> PoolStatus:
        """What it holds right now."""

    async def close(self) -> None:
        """Release every worker (shutdown)."""


class AutoStation:
    """``WorkerProtocol = auto``: whichever protocol the endpoint's workers speak.

    It starts with one protocol's pool (leases while nothing is known; v1 once the endpoint was
    found to speak v1) and switches when a worker answers that it speaks the other: a v1
    worker refuses a lease (``Unknown action: lease``), an upgraded endpoint's v2 worker
    refuses a wake-up (``Unknown action: wakeup``). The generations that were waiting go on
    with the new pool.

    Args:
        pool: the pool tried first.
        open_pool: starts the pool of a protocol (``"v1"`` or ``"v2"``).
        on_detected: told the protocol once the endpoint showed it speaks it (to remember it).
    """

    def __init__(
        self,
        pool: WorkerPool,
        open_pool: Callable[[str], Awaitable[WorkerPool]],
        on_detected: Callable[[str], None],
    ) -> None:
        self._pools: dict[str, WorkerPool] = {pool.protocol: pool}
        self._current = pool
        self._open_pool = open_pool
        self._on_detected = on_detected
        self._switching = anyio.Lock()

    def __repr__(self) -> str:
        return f"AutoStation(protocol={self._current.protocol!r})"

    @property
    def protocol(self) -> str:
        """The protocol in use now."""
        return self._current.protocol

    def try_take(self) -> Seat | None:
        """A warm seat from the protocol in use."""
        return self._current.try_take()

    async def acquire(self, report: WaitingCallback) -> Seat:
        """A seat from the pool in use; when its worker speaks the other protocol, from that
        protocol's pool."""
        for _ in range(len(("v1", "v2"))):
            pool = self._current
            try:
                return await pool.acquire(report)
            except ProtocolMismatchError as mismatch:
                await self._switch(pool, mismatch.detected)
        return await self._current.acquire(report)

    async def give_back(self, seat: Seat, *, broken: bool = False) -> None:
        """Give the seat back to the pool that handed it out."""
        pool = next((p for p in self._pools.values() if p.owns(seat)), self._current)
        await pool.give_back(seat, broken=broken)

    def prewarm(self, workers: int, *, hold_s: float | None = None) -> int:
        """Prewarm on the protocol in use."""
        return self._current.prewarm(workers, hold_s=hold_s)

    def set_floor(self, workers: int) -> None:
        """The floor, on the protocol in use."""
        self._current.set_floor(workers)

    def status(self) -> PoolStatus:
        """Every pool's workers together."""
        parts = [pool.status() for pool in self._pools.values()]
        return PoolStatus(
            warm=sum(p.warm for p in parts),
            busy=sum(p.busy for p in parts),
            free_seats=sum(p.free_seats for p in parts),
            booting=sum(p.booting for p in parts),
            waiting=sum(p.waiting for p in parts),
            floor=max(p.floor for p in parts),
        )

    async def close(self) -> None:
        """Release every worker of every pool."""
        for pool in self._pools.values():
            await pool.close()

    async def _switch(self, refused: WorkerPool, protocol: str) -> None:
        async with self._switching:  # every waiter of the refusal switches at once
            if self._current is not refused:
                return
            log.warning(
                "[RunPodServerless] the endpoint's worker refused a %s job: it speaks protocol "
                "%s; switching to it%s",
                "lease" if refused.protocol == "v2" else "wake-up",
                protocol,
                " (wakeup/keepalive with one worker)" if protocol == "v1" else " (leases)",
            )
            pool = self._pools.get(protocol)
            if pool is None:
                pool = self._pools[protocol] = await self._open_pool(protocol)
            self._current = pool
            self._on_detected(protocol)

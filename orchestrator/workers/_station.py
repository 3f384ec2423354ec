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
    """``WorkerProtocol = auto``: leases first; once a worker refuses them, v1 for good.

    Args:
        pool: the v2 pool tried first (probing: one lease request at a time).
        make_v1: starts the v1 pool to fall back to.
        on_detected: told ``"v1"`` once the endpoint showed it speaks v1 (to remember it).
    """

    def __init__(
        self,
        pool: WorkerPool,
        make_v1: Callable[[], Awaitable[WorkerPool]],
        on_detected: Callable[[str], None],
    ) -> None:
        self._pool = pool
        self._make_v1 = make_v1
        self._on_detected = on_detected
        self._v1: WorkerPool | None = None
        self._falling_back = anyio.Lock()

    def __repr__(self) -> str:
        return f"AutoStation(protocol={'v1' if self._v1 is not None else 'v2 (trying)'})"

    @property
    def protocol(self) -> str:
        """``v2`` until the endpoint refused a lease, then ``v1``."""
        return "v1" if self._v1 is not None else "v2"

    @property
    def _current(self) -> WorkerPool:
        return self._v1 or self._pool

    def try_take(self) -> Seat | None:
        """A warm seat from the protocol in use."""
        return self._current.try_take()

    async def acquire(self, report: WaitingCallback) -> Seat:
        """A seat from the lease pool; on a v1 refusal, from the v1 worker it wakes."""
        if self._v1 is None:
            try:
                return await self._pool.acquire(report)
            except ProtocolMismatchError:
                await self._fall_back()
        assert self._v1 is not None
        return await self._v1.acquire(report)

    async def give_back(self, seat: Seat, *, broken: bool = False) -> None:
        """Give the seat back to the pool that handed it out."""
        pool = self._pool if self._pool.owns(seat) or self._v1 is None else self._v1
        await pool.give_back(seat, broken=broken)

    def prewarm(self, workers: int, *, hold_s: float | None = None) -> int:
        """Prewarm on the protocol in use."""
        return self._current.prewarm(workers, hold_s=hold_s)

    def set_floor(self, workers: int) -> None:
        """The floor, on the protocol in use."""
        self._current.set_floor(workers)

    def status(self) -> PoolStatus:
        """Both pools' workers together."""
        parts = [self._pool.status(), *([self._v1.status()] if self._v1 else [])]
        return PoolStatus(
            warm=sum(p.warm for p in parts),
            busy=sum(p.busy for p in parts),
            free_seats=sum(p.free_seats for p in parts),
            booting=sum(p.booting for p in parts),
            waiting=sum(p.waiting for p in parts),
            floor=max(p.floor for p in parts),
        )

    async def close(self) -> None:
        """Release every worker of both."""
        await self._pool.close()
        if self._v1 is not None:
            await self._v1.close()

    async def _fall_back(self) -> None:
        async with self._falling_back:  # every waiter of the refused probe falls back at once
            if self._v1 is None:
                await self._open_v1()

    async def _open_v1(self) -> None:
        if self._v1 is None:
            log.warning(
                "[RunPodServerless] the endpoint's worker refused a lease ('Unknown action: "
                "lease'): it speaks protocol v1; using wakeup/keepalive with one worker"
            )
            self._v1 = await self._make_v1()
            self._on_detected("v1")

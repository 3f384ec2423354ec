"""Where a generation gets its worker: the station interface and ``WorkerProtocol = auto``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from ..errors import ProtocolMismatchError
from ._handle import Seat
from ._pool import LeasePool
from ._shared_v1 import SharedV1Worker
from ._waiting import WaitingCallback

__all__ = ["AutoStation", "Station"]

log = logging.getLogger("swarmpod.workers")


class Station(Protocol):
    """Hands out seats on workers of one endpoint and key.

    :class:`LeasePool` (v2), :class:`SharedV1Worker` (v1) and :class:`AutoStation` are
    stations.
    """

    def try_take(self) -> Seat | None:
        """A seat on a free warm worker at once, or None."""

    async def acquire(self, report: WaitingCallback) -> Seat:
        """Wait for a seat (the caller bounds the wait), reporting why it waits."""

    async def give_back(self, seat: Seat, *, broken: bool = False) -> None:
        """Leave a seat; ``broken``: the worker stopped answering."""

    async def close(self) -> None:
        """Release every worker (shutdown)."""


class AutoStation:
    """``WorkerProtocol = auto``: leases first; once a worker refuses them, v1 for good.

    Args:
        pool: the v2 lease pool tried first.
        make_v1: makes the v1 station to fall back to.
        on_detected: told ``"v1"`` once the endpoint showed it speaks v1 (to remember it).
    """

    def __init__(
        self,
        pool: LeasePool,
        make_v1: Callable[[], SharedV1Worker],
        on_detected: Callable[[str], None],
    ) -> None:
        self._pool = pool
        self._make_v1 = make_v1
        self._on_detected = on_detected
        self._v1: SharedV1Worker | None = None

    def __repr__(self) -> str:
        return f"AutoStation(protocol={'v1' if self._v1 is not None else 'v2 (trying)'})"

    @property
    def protocol(self) -> str:
        """The protocol in use: ``v2`` until the endpoint refused a lease, then ``v1``."""
        return "v1" if self._v1 is not None else "v2"

    def try_take(self) -> Seat | None:
        """A warm seat from the protocol in use."""
        return (self._v1 or self._pool).try_take()

    async def acquire(self, report: WaitingCallback) -> Seat:
        """A seat from the lease pool; on a v1 refusal, from the v1 worker it woke."""
        if self._v1 is None:
            try:
                return await self._pool.acquire(report)
            except ProtocolMismatchError:
                self._fall_back()
        assert self._v1 is not None
        return await self._v1.acquire(report)

    async def give_back(self, seat: Seat, *, broken: bool = False) -> None:
        """Give the seat back to the station that handed it out."""
        if self._v1 is not None and not self._pool.owns(seat):
            await self._v1.give_back(seat, broken=broken)
        else:
            await self._pool.give_back(seat, broken=broken)

    async def close(self) -> None:
        """Release every worker of both."""
        await self._pool.close()
        if self._v1 is not None:
            await self._v1.close()

    def _fall_back(self) -> None:
        if self._v1 is None:
            log.warning(
                "[RunPodServerless] the endpoint's worker refused a lease ('Unknown action: "
                "lease'): it speaks protocol v1; using wakeup/keepalive with one worker"
            )
            self._v1 = self._make_v1()
            self._on_detected("v1")

"""A worker session: acquire a seat → make sure the worker's SwarmUI is ready → use it → give
it back, shielded, on every path. The engine, model discovery (``hold_worker``) and anything
else that needs a worker's SwarmUI go through it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import TracebackType
from typing import Self

import aiohttp
import anyio

from ..errors import OrchestratorError, SwarmUIError, TransportError
from ..swarmui import SwarmUIClient
from ._handle import Seat
from ._readiness import wait_until_swarm_ready
from ._station import Station
from ._waiting import WaitingCallback

__all__ = ["WorkerSession"]

log = logging.getLogger("swarmpod.workers")


def _worker_gone(exc: OrchestratorError, seat: Seat | None) -> bool:
    """Whether an error from a worker's SwarmUI says the worker is no longer there for us: it
    could not be reached, or a v2 worker's gateway refused the lease's token (401: the lease
    ended; a v1 worker's 401 is a wrong setting, which another worker would not cure)."""
    if isinstance(exc, TransportError):
        return True
    leased = seat is not None and seat.handle.protocol == "v2"
    return leased and isinstance(exc, SwarmUIError) and exc.status == 401


class WorkerSession:
    """One use of one worker, from taking a seat to giving it back.

    >>> async with WorkerSession(station, http=session, request_timeout=30,   # doctest: +SKIP
    ...                          release_timeout=30, poll_interval=2) as use:
    ...     if not use.take_warm():
    ...         with anyio.fail_after(120):
    ...             await use.acquire(report)
    ...     swarm = await use.ready(on_loading=lambda: None)

    Leaving the block gives the seat back (shielded, bounded by ``release_timeout``); an error
    that says the worker is gone (unreachable, or its gateway refused the lease's token) retires
    it (broken).

    Args:
        station: where seats come from.
        http: the HTTP session for the worker's SwarmUI.
        request_timeout: one SwarmUI call's bound.
        release_timeout: giving the seat back's bound.
        poll_interval: between readiness checks.
    """

    def __init__(
        self,
        station: Station,
        *,
        http: aiohttp.ClientSession,
        request_timeout: float,
        release_timeout: float,
        poll_interval: float,
    ) -> None:
        self._station = station
        self._http = http
        self._request_timeout = request_timeout
        self._release_timeout = release_timeout
        self._poll_interval = poll_interval
        self.seat: Seat | None = None
        self._swarm: SwarmUIClient | None = None
        self._broken = False
        self._given_back = False

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, OrchestratorError):
            self.failed(exc)
        await self.give_back()

    def take_warm(self) -> bool:
        """Take a free seat on a warm worker at once; False when there is none."""
        self.seat = self._station.try_take()
        return self.seat is not None

    async def acquire(self, report: WaitingCallback) -> Seat:
        """Wait for a seat, hearing why it waits (the caller bounds the wait)."""
        self.seat = await self._station.acquire(report)
        return self.seat

    async def ready(self, *, on_loading: Callable[[], None]) -> SwarmUIClient:
        """The worker's SwarmUI, made sure to have a session and no backend loading."""
        swarm = self.swarm()
        assert self.seat is not None
        if not self.seat.checked:
            await wait_until_swarm_ready(
                swarm, poll_interval=self._poll_interval, on_loading=on_loading
            )
        return swarm

    def swarm(self) -> SwarmUIClient:
        """A client for the seat's worker's SwarmUI (made once)."""
        assert self.seat is not None, "acquire a seat first"
        if self._swarm is None:
            self._swarm = self.seat.handle.swarm_client(
                self._http, session_id=self.seat.session_id, request_timeout=self._request_timeout
            )
        return self._swarm

    def failed(self, exc: OrchestratorError) -> None:
        """An error from the worker: one that says it is gone (it could not be reached, or a v2
        worker's gateway refused the lease's token) retires it when the seat is given back."""
        if _worker_gone(exc, self.seat):
            self._broken = True

    async def give_back(self) -> bool:
        """Give the seat back (once; shielded; bounded). False when it took too long."""
        seat = None if self._given_back else self.seat
        self._given_back = True
        if seat is None:
            return True
        with anyio.CancelScope(shield=True), anyio.move_on_after(self._release_timeout) as scope:
            await self._station.give_back(seat, broken=self._broken)
        if scope.cancelled_caught:
            log.warning(
                "[RunPodServerless] giving worker %s back took over %g s",
                seat.handle.worker_id,
                self._release_timeout,
            )
            return False
        return True

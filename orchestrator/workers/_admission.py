"""MaxConcurrent admission: generations beyond the limit wait in arrival order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

__all__ = ["Admission"]


class Admission:
    """A FIFO capacity limit on generations in flight; waiting is cancellable.

    >>> admission = Admission(2)
    >>> admission.in_flight, admission.waiting
    (0, 0)
    """

    def __init__(self, max_concurrent: int) -> None:
        self._limiter = anyio.CapacityLimiter(max_concurrent)
        self._waiting = 0
        self._idle = anyio.Event()
        self._idle.set()

    @property
    def in_flight(self) -> int:
        """Generations admitted and not finished."""
        return int(self._limiter.borrowed_tokens)

    @property
    def waiting(self) -> int:
        """Generations queued behind the limit."""
        return self._waiting

    @property
    def limit(self) -> int:
        """The MaxConcurrent limit."""
        return int(self._limiter.total_tokens)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot for the body; waits in order while all slots are taken."""
        token = object()
        self._waiting += 1
        try:
            await self._limiter.acquire_on_behalf_of(token)
        finally:
            self._waiting -= 1
        if self._idle.is_set():
            self._idle = anyio.Event()
        try:
            yield
        finally:
            self._limiter.release_on_behalf_of(token)
            if not self._limiter.borrowed_tokens:
                self._idle.set()

    async def until_idle(self) -> None:
        """Wait until no generation is in flight."""
        while self._limiter.borrowed_tokens:
            await self._idle.wait()

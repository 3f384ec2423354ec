"""Runners of the shared pool: one that can hand its worker over, and one that takes a worker
over from another replica.

A worker of the shared pool is run by the replica that owns its row. Two ways for the owner
to change, and neither releases the worker nor loses its journal entry:

- :meth:`ClusterRunner.hand_over`: a replica stopping cleanly while other replicas still
  generate on its worker stops driving it, leaving the job running and its journal entry
  open; another replica adopts it.
- ``ClusterRunner(adoption=...)``: a replica adopting a warm worker (its owner died or
  handed it over) starts from the row: the worker's chart is walked to Warm from what the row
  says (no request, no boot), the journal entry is the one it claimed, and from then on the
  worker is held, watched and released like any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import anyio

from ..runpod import Job
from ._drivers import WorkerDriver
from ._handle import WorkerHandle
from ._host import RunnerHost
from ._matcher import WorkerSlot
from ._runner import WorkerRunner
from ._v2 import LeaseTerms

__all__ = ["Adoption", "ClusterHost", "ClusterRunner"]


class ClusterHost(RunnerHost, Protocol):
    """The shared pool, as its runners see it."""

    async def forget(self, slot: WorkerSlot) -> None:
        """The worker ended: its row goes."""
        ...

    def others_seated(self, slot: WorkerSlot) -> bool:
        """Whether other replicas hold seats on the worker now."""
        ...


class ClusterRunner(WorkerRunner):
    """A :class:`WorkerRunner` that can give its worker to another replica instead of
    releasing it (:meth:`hand_over`), and whose worker's row goes when it ends. With an
    ``adoption``, it runs a worker another replica requested: it starts warm, from its row.

    Args:
        slot: as :class:`WorkerRunner`.
        driver: as :class:`WorkerRunner`.
        terms: as :class:`WorkerRunner`.
        pool: the shared pool.
        adoption: what was taken over, for an adopted worker.
        **kwargs: as :class:`WorkerRunner`.
    """

    def __init__(
        self,
        slot: WorkerSlot,
        driver: WorkerDriver,
        terms: LeaseTerms,
        pool: ClusterHost,
        *,
        adoption: Adoption | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(slot, driver, terms, pool, **kwargs)
        self._cluster = pool
        self.adoption = adoption
        self.handed_over = False
        self.scope = anyio.CancelScope()

    def hand_over(self) -> None:
        """Stop driving the worker, leaving its job running and its journal entry open for
        the replica that adopts it."""
        self.handed_over = True
        self.scope.cancel()

    async def _bring_up(self) -> bool:
        """Request the worker and wait until it is warm; an adopted one is warm already: its
        chart is walked to Warm from what its row says (no request, no boot)."""
        adoption = self.adoption
        if adoption is None:
            return await super()._bring_up()
        chart = self.slot.chart
        self._entry = adoption.journal_entry
        self._job = self.slot.job = Job(id=adoption.job_id, status="IN_PROGRESS")
        self._handle = adoption.handle
        for event in ("submitted", "assigned", "handed_over", "loaded"):
            chart.send(event)
        now = anyio.current_time()
        self._booting_since = now
        self._observer.handed_over(adoption.handle.worker_id)
        self._observer.ready(now)
        self._pool.ready(self.slot, adoption.capacity, now)
        return True

    async def _hold(self) -> None:
        """Hold the warm worker; stopped (the replica shuts down) while other replicas
        generate on it, hand it over rather than release it under them."""
        try:
            await super()._hold()
        except anyio.get_cancelled_exc_class():
            if self._cluster.others_seated(self.slot):
                self.handed_over = True
            raise

    async def _finish(self, failure: BaseException | None) -> None:
        """The worker's life ended (shielded): as any runner's, then its row goes at once, not
        through the write queue, which a stopping replica cancels; or, handed over, it ends
        here and its row stays for the adopter."""
        if self.handed_over:
            self.ended.set()
            self._pool.gone(self.slot, None)
            return
        await super()._finish(failure)
        await self._cluster.forget(self.slot)


@dataclass(frozen=True)
class Adoption:
    """What a replica takes over with a warm worker.

    Attributes:
        handle: the worker (its URL, gateway token, hold job).
        job_id: the job that holds it.
        capacity: its seats.
        busy: seats other replicas hold on it now.
        idle_for_s: how long it has had no seat taken (0 when busy).
        journal_entry: the journal entry of its job, now this replica's (None: none found).
    """

    handle: WorkerHandle
    job_id: str
    capacity: int
    busy: int
    idle_for_s: float
    journal_entry: int | None

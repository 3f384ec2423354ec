"""What a worker's runner asks of the pool that runs it (the pool of one process, or the
shared pool of several replicas)."""

from __future__ import annotations

from typing import Protocol

from ._matcher import WorkerSlot
from ._waiting import WaitReason

__all__ = ["RunnerHost"]


class RunnerHost(Protocol):
    """The pool a :class:`~orchestrator.workers._runner.WorkerRunner` reports to.

    :class:`~orchestrator.workers.WorkerPool` is one; the shared pool of several replicas
    (``_cluster_pool.ClusterPool``) is another.
    """

    @property
    def closing(self) -> bool:
        """The pool shuts down: a worker just requested is released at once."""
        ...

    @property
    def expected_cold_start_s(self) -> float:
        """The endpoint's expected cold start."""
        ...

    def changed(self) -> None:
        """A worker's chart or waiting reason changed."""
        ...

    def confirmed(self, protocol: str) -> None:
        """A worker was handed over: the endpoint speaks ``protocol``."""
        ...

    def ready(self, slot: WorkerSlot, capacity: int, now: float) -> None:
        """A worker is warm with ``capacity`` seats."""
        ...

    def gone(self, slot: WorkerSlot, failure: Exception | None) -> None:
        """A worker's life ended (released or lost)."""
        ...

    def late_after_s(self) -> float:
        """How long after its request a coming worker is late."""
        ...

    def release_at(self, slot: WorkerSlot) -> float:
        """When a free warm worker is released (loop time)."""
        ...

    async def may_release(self, slot: WorkerSlot) -> bool:
        """Whether the free warm worker may be released now (the shared pool checks in its
        table that no replica took a seat on it meanwhile, and then closes its seats)."""
        ...

    async def diagnose(self) -> WaitReason:
        """Why jobs stay queued on the endpoint (``/health``)."""
        ...

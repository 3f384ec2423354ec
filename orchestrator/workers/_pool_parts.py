"""What the one-process pool and the shared pool do alike: a waiter in line, why jobs stay
queued (``/health``, asked at most every few seconds), and the terms a lease asks for."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Final

import anyio

from ..errors import OrchestratorError
from ..runpod import Health, RunPodClient
from ._handle import Seat
from ._runner import RECYCLE_MARGIN_S
from ._v2 import LeaseTerms
from ._waiting import Waiting, WaitingCallback, WaitReason, diagnose_queue

__all__ = ["QueueDiagnosis", "Waiter", "lease_terms"]

log = logging.getLogger("swarmpod.workers")

_HEALTH_MAX_AGE_S: Final = 5.0
# The worker ends a lease by itself only as a safety net: after our idle window plus this.
_WORKER_IDLE_MARGIN_S: Final = 60.0
# A lease takes new generations for at least this long before it retires.
_LEASE_USE_S: Final = 3600.0


@dataclass(eq=False)
class Waiter:
    """A generation waiting for a seat.

    Attributes:
        report: hears why it waits.
        served: set once it got a seat, or a failure.
        seat: the seat it got.
        failure: why it got none.
        told: the last reason it heard.
        arrived: when it started to wait (UTC seconds since the epoch; the shared pool tells
            a cold seat by it).
    """

    report: WaitingCallback
    served: anyio.Event = field(default_factory=anyio.Event)
    seat: Seat | None = None
    failure: BaseException | None = None
    told: WaitReason | None = None
    arrived: float = 0.0

    def outcome(self) -> Seat:
        """The seat it got, once served.

        Raises:
            OrchestratorError: why it got none (its own copy of a shared failure).
        """
        if self.failure is not None:
            failure = self.failure
            if isinstance(failure, OrchestratorError):
                raise failure.again() from failure
            raise OrchestratorError(f"the worker asked for failed: {failure!r}") from failure
        assert self.seat is not None
        return self.seat

    def tell(self, waiting: Waiting) -> None:
        """Say why it waits, once per reason (a callback that raises is logged, ignored)."""
        if waiting.reason is self.told:
            return
        self.told = waiting.reason
        try:
            self.report(waiting)
        except Exception:
            log.exception("[RunPodServerless] a waiting callback raised; ignored")


class QueueDiagnosis:
    """Why jobs stay queued on an endpoint: one ``/health`` shared by every worker asking
    within a few seconds."""

    def __init__(self) -> None:
        self._health: tuple[float, Health, WaitReason] | None = None

    async def diagnose(self, client: RunPodClient) -> WaitReason:
        """The reason ``/health`` gives (queued when it cannot be asked)."""
        now = anyio.current_time()
        if self._health is None or now - self._health[0] > _HEALTH_MAX_AGE_S:
            before = self._health[1].workers.unhealthy if self._health else 0
            try:
                health = await client.health()
            except OrchestratorError as exc:
                log.info("[RunPodServerless] /health: %s", exc)
                return WaitReason.QUEUED
            self._health = (now, health, diagnose_queue(health, unhealthy_before=before))
        return self._health[2]


def lease_terms(
    *, idle_window_s: float, generation_s: float, hold_s: float, floor: int
) -> LeaseTerms:
    """What a lease asks of its worker: it ends itself only as a safety net, after the idle
    window (or the prewarm hold, or the floor) plus a margin; it takes generations for at
    least an hour before it retires, whatever GenerationTimeoutSec."""
    longest = generation_s + RECYCLE_MARGIN_S + _LEASE_USE_S
    if floor > 0:  # kept by the floor, not by its idle time
        return LeaseTerms(longest, longest, longest)
    return LeaseTerms(
        idle_seconds=max(idle_window_s, 1.0) + _WORKER_IDLE_MARGIN_S,
        startup_grace_seconds=max(idle_window_s, hold_s) + _WORKER_IDLE_MARGIN_S,
        max_lease_seconds=longest,
    )

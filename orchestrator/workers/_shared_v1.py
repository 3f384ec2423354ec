"""One v1 worker per endpoint and key, shared by the generations in flight.

A v1 keepalive job is not tied to the worker that was woken: with two workers woken at once,
each keepalive can land on the other's worker, and cancelling "my" keepalive then stops the
worker another generation is using (specs/worker-protocols.md, "Hold at most one v1 worker per
endpoint"). So swarmpod holds at most one v1 worker per endpoint and key; every generation
that arrives while it is held (or being woken) joins it, and the last one to leave releases it.
SwarmUI queues concurrent generations on its own backends.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import anyio
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span

from observability import CostLedger, Telemetry, WorkerBill, end_worker_span, span_attributes
from observability import span_time_ns as span_now

from ..runpod import Job
from ..secrets import Secret
from ._handle import Seat, WorkerHandle, copy_failure
from ._idle import IdleWindow
from ._journal import LeaseJournal
from ._v1 import V1Protocol
from ._waiting import Waiting, WaitingCallback, WaitReason, reason_of_status

__all__ = ["SharedV1Worker"]

log = logging.getLogger("swarmpod.workers")

Spawn = Callable[[Callable[[], Coroutine[Any, Any, None]]], object]

# Submit the next keepalive this long before the current one ends: under RunPod's 4 s queue
# delay (no extra worker starts) and its 5 s idle timeout (the worker waits for it).
_RENEW_AHEAD_S = 2.0


@dataclass
class _Wake:
    """One attempt to wake and hold a worker, shared by everyone who attached to it."""

    accepted: anyio.Event = field(default_factory=anyio.Event)
    ready: anyio.Event = field(default_factory=anyio.Event)
    job: Job | None = None
    handle: WorkerHandle | None = None
    failure: BaseException | None = None
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    entry: int | None = None
    bill: WorkerBill | None = None
    root: Span | None = None
    phase: Span | None = None


class SharedV1Worker:
    """The v1 worker of one endpoint and key, woken once, shared, kept for the idle window.

    Args:
        protocol: the v1 protocol with the RunPod client (and key) of this station.
        spawn: starts a background task in the owner's task group (the orchestrator's).
        idle: the endpoint's idle window: how long the worker is kept after its last user.
        journal: journals each wake-up and its keepalive (crash-safe release), with ``key``
            (by fingerprint) and ``endpoint_id``.
        costs: the ledger each wake-up's estimated bill opens in (cost attribution).
        telemetry: where each worker's trace goes (``Worker:<endpoint>``: Booting, Warm).
    """

    def __init__(
        self,
        protocol: V1Protocol,
        spawn: Spawn,
        idle: IdleWindow | None = None,
        *,
        journal: LeaseJournal | None = None,
        key: Secret | None = None,
        endpoint_id: str = "",
        costs: CostLedger | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._costs = costs or CostLedger()
        self._telemetry = telemetry or Telemetry.default()
        self._protocol = protocol
        self._spawn = spawn
        self._idle = idle or IdleWindow(0.0)
        self._journal = journal if key is not None else None
        self._key = key
        self._endpoint_id = endpoint_id
        self._users = 0
        self._epoch = 0
        self._closing = False
        self._wake: _Wake | None = None
        self._retired: list[_Wake] = []
        self._watchers: list[WaitingCallback] = []

    def __repr__(self) -> str:
        held = self.held
        return (
            f"SharedV1Worker(users={self._users}, "
            f"held={held.worker_id if held is not None else None!r})"
        )

    @property
    def users(self) -> int:
        """Generations on the worker (or waiting for it) right now."""
        return self._users

    @property
    def held(self) -> WorkerHandle | None:
        """The worker held and ready, if any."""
        wake = self._wake
        return wake.handle if wake is not None and wake.failure is None else None

    def try_take(self) -> Seat | None:
        """A seat on the held worker at once (it is warm), or None."""
        handle = self.held
        if handle is None or self._closing:
            return None
        self._users += 1
        self._epoch += 1
        wake = self._wake
        return Seat(
            handle=handle,
            cold=False,
            session_id=handle.receipt.session_id,
            token=wake,
            bill=wake.bill if wake is not None else None,
        )

    async def acquire(self, report: WaitingCallback) -> Seat:
        """Join the wake-up under way (or start one) and wait for the worker; caller bounds it.

        Raises:
            OrchestratorError: the wake-up failed (every generation waiting on it hears why).
        """
        if self._closing:
            raise RuntimeError("the station is closing")
        self._users += 1
        self._epoch += 1
        try:
            if self._wake is None:
                self._wake = _Wake()
                self._opened(self._wake)
                report(Waiting(WaitReason.REQUESTING))
                self._spawn(self._wake_and_hold)
            wake = self._wake
            self._watchers.append(report)
            if wake.job is not None:
                report(Waiting(reason_of_status(wake.job), job=wake.job))
            await wake.accepted.wait()
            if wake.job is None:
                raise copy_failure(wake.failure) from wake.failure
            await wake.ready.wait()
            if wake.handle is None:
                raise copy_failure(wake.failure) from wake.failure
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._leave()
            raise
        handle = wake.handle
        return Seat(
            handle=handle,
            cold=True,
            job_ids=tuple(j for j in (wake.job.id, handle.hold_job_id) if j),
            delay_ms=handle.receipt.delay_ms,
            session_id=handle.receipt.session_id,
            token=wake,
            bill=wake.bill,
        )

    async def give_back(self, seat: Seat, *, broken: bool = False) -> None:
        """Leave the worker; ``broken`` forgets it (it stopped answering). Call it shielded."""
        if broken and self._wake is not None and seat.token is self._wake:
            self._invalidate()
        await self._leave()

    async def close(self) -> None:
        """Release the worker now (shutdown), whoever is on it."""
        self._closing = True
        await self._release_all()

    def _invalidate(self) -> None:
        """Forget the held worker; the next generation wakes anew (its keepalive is cancelled
        when the last user leaves)."""
        if self._wake is not None and self._wake.handle is not None:
            log.warning(
                "[RunPodServerless] worker %s stopped answering; the next generation wakes "
                "a new one",
                self._wake.handle.worker_id,
            )
            self._retired.append(self._wake)
            self._wake = None

    async def _leave(self) -> None:
        self._users -= 1
        if self._users > 0:
            return
        window = self._idle.seconds
        if window <= 0 or self._closing or self.held is None:
            await self._release_all()
            return
        await self._release(self._retired)
        self._retired = []
        epoch = self._epoch

        async def release_when_idle() -> None:
            await anyio.sleep(window)
            if self._users == 0 and self._epoch == epoch:
                with anyio.CancelScope(shield=True):
                    await self._release_all()

        self._spawn(release_when_idle)

    async def _release_all(self) -> list[str]:
        wakes = [*self._retired, *([self._wake] if self._wake is not None else [])]
        self._wake, self._retired = None, []
        self._watchers.clear()
        return await self._release(wakes)

    async def _release(self, wakes: list[_Wake]) -> list[str]:
        cancelled: list[str] = []
        for wake in wakes:
            wake.scope.cancel()
            released = await self._protocol.release(wake_job=wake.job, handle=wake.handle)
            cancelled += released
            self._stopped(wake, held_to_the_end=bool(released))
            if self._journal is not None and wake.entry is not None:
                expected = [j for j in (wake.handle and wake.handle.hold_job_id,) if j]
                if all(job_id in cancelled for job_id in expected):
                    self._journal.close(wake.entry, "released")
        return cancelled

    # --- cost and trace of one wake-up ------------------------------------------------------

    def _opened(self, wake: _Wake) -> None:
        """The wake-up starts: its bill opens, and its trace (``Worker:<endpoint>``)."""
        now = anyio.current_time()
        wake.bill = self._costs.open_worker(
            f"{self._endpoint_id} v1 worker", protocol="v1", requested_at=now
        )
        tracer = self._telemetry.tracer
        wake.root = tracer.start_span(
            f"Worker:{self._endpoint_id}",
            context=otel_context.Context(),
            start_time=span_now(),
            attributes=span_attributes(
                {"endpoint.id": self._endpoint_id, "protocol": "v1"}, prefix="swarmpod."
            ),
        )
        wake.bill.span_context = wake.root.get_span_context()
        wake.phase = self._phase_span(wake, "Booting")

    def _phase_span(self, wake: _Wake, phase: str) -> Span:
        assert wake.root is not None
        return self._telemetry.tracer.start_span(
            phase,
            context=trace.set_span_in_context(wake.root),
            start_time=span_now(),
            attributes={"swarmpod.phase": phase},
        )

    def _woken(self, wake: _Wake) -> None:
        """The worker answers: its boot ends, it is warm."""
        assert wake.handle is not None
        if wake.bill is not None:
            wake.bill.assigned(wake.handle.worker_id)
            wake.bill.ready(anyio.current_time())
        if wake.phase is not None:
            wake.phase.end(end_time=span_now())
            wake.phase = self._phase_span(wake, "Warm")

    def _stopped(self, wake: _Wake, *, held_to_the_end: bool) -> None:
        """The worker was released (its job cancelled) or abandoned: close its bill and trace."""
        bill = wake.bill
        if bill is not None:
            wake_job = wake.job
            at = anyio.current_time() if wake_job is not None else bill.requested_at
            bill.stop(at, ended_by_itself=not held_to_the_end)
        if wake.phase is not None:
            wake.phase.end(end_time=span_now())
            wake.phase = None
        if wake.root is not None:
            end_worker_span(
                wake.root,
                bill,
                lease_id=wake.job.id if wake.job else None,
                worker_id=wake.handle.worker_id if wake.handle else None,
                failure=wake.failure,
            )
            wake.root = None

    def _journal_job(self, wake: _Wake, job_id: str | None) -> None:
        if self._journal is not None and wake.entry is not None and job_id:
            self._journal.attach(wake.entry, job_id)

    # --- the background task ----------------------------------------------------------

    async def _wake_and_hold(self) -> None:
        wake = self._wake
        assert wake is not None
        if wake.root is None:
            await self._wake_and_keep(wake)
            return
        with trace.use_span(wake.root, end_on_exit=False, record_exception=False):
            await self._wake_and_keep(wake)

    async def _wake_and_keep(self, wake: _Wake) -> None:

        def broadcast(job: Job) -> None:
            wake.job = job
            for watch in list(self._watchers):
                watch(Waiting(reason_of_status(job), job=job))

        with wake.scope:
            try:
                if self._journal is not None and self._key is not None:
                    wake.entry = self._journal.begin(self._endpoint_id, "v1", self._key)
                wake.job = await self._protocol.submit_wakeup()
                self._journal_job(wake, wake.job.id)
                wake.accepted.set()
                receipt = await self._protocol.wait_until_woken(wake.job, watch=broadcast)
                wake.handle = await self._protocol.hold(receipt)
                self._woken(wake)
                self._journal_job(wake, wake.handle.hold_job_id)
            except Exception as exc:
                wake.failure = exc
            finally:
                wake.accepted.set()
                wake.ready.set()
                self._watchers.clear()
            if wake.handle is None:
                if self._wake is wake:
                    self._wake = None  # later generations try afresh
                    # A wake-up job still queued or running must be withdrawn by the last
                    # user out, or RunPod starts (and bills) a worker nobody waits for.
                    self._retired.append(wake)
                return
            await self._keep_held(wake)

    async def _keep_held(self, wake: _Wake) -> None:
        """Confirm the keepalive, then renew it just before it ends while users remain."""
        assert wake.handle is not None
        try:
            await self._protocol.confirm_hold(wake.handle)
        except Exception as exc:
            log.warning("[RunPodServerless] %s", exc)
            self._invalidate()
            return
        hold = math.ceil(self._protocol.hold_seconds)
        while True:
            await anyio.sleep(max(0.0, hold - _RENEW_AHEAD_S))
            renewed = await self._protocol.hold(wake.handle.receipt)
            # The old keepalive completes on its own a moment later and the worker takes the
            # new one; cancelling the old one would stop the worker.
            wake.handle.hold_job_id = renewed.hold_job_id
            self._journal_job(wake, renewed.hold_job_id)

"""One worker's runner: the task that drives its chart through its whole life.

journal entry → request (``/run``, never abandoned half-way) → wait for the hand-over (polls
that are never interrupted; a withdrawal or a give-up decided meanwhile runs beside them) →
SwarmUI ready → warm until the idle window passes, the worker retires or ends its job itself
→ release (``/cancel``, shielded) → journal closed, bill closed, the pool told.

Every I/O outcome is sent into the :class:`~statecharts.WorkerChart` after the I/O; decisions
the pool takes (withdraw a queued request, give up a stalled one, retire) are transitions it
sends itself, which the runner then carries out.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import anyio

from ..errors import (
    DatabaseError,
    OrchestratorError,
    Phase,
    RunPodError,
    WorkerNotReadyError,
)
from ..runpod import Job
from ..secrets import Secret
from ..swarmui import SwarmUIClient
from ._drivers import PROBE_INTERVAL_S, Answers, Kept, Released, Watched, WorkerDriver
from ._handle import WorkerHandle
from ._journal import LeaseJournal
from ._matcher import WorkerSlot
from ._observer import WorkerObserver, WorkerStop
from ._readiness import wait_until_swarm_ready
from ._v2 import LeaseTerms
from ._waiting import WaitReason

if TYPE_CHECKING:
    from ._host import RunnerHost

__all__ = ["RunnerTimes", "WorkerRunner"]

log = logging.getLogger("swarmpod.workers")

# A lease still queued this long after its request gets a /health diagnosis (RunPod's scaler
# starts a worker after ~4 s: booting, throttled or crash-looping?).
_EARLY_DIAGNOSIS_S: Final = 8.0
_LATE_POLL_S: Final = 60.0
# A lease is retired this long (plus the generation timeout) before its max_lease_seconds.
RECYCLE_MARGIN_S: Final = 120.0
# An idle lease is released this long before its worker would end it itself (its idle or
# startup-grace time): nothing tells of that end at once, and a generation sent just then fails.
_SELF_END_MARGIN_S: Final = 10.0

SwarmFactory = Callable[[WorkerHandle], SwarmUIClient]


@dataclass(frozen=True)
class RunnerTimes:
    """The deadlines a runner keeps (seconds).

    Attributes:
        startup: StartupTimeoutSec: a worker RunPod runs but that is not ready this long after
            it was seen running is lost (and replaced for whoever still waits).
        release: bound of one release (cancel), which runs shielded.
        generation: GenerationTimeoutSec: a worker takes no new generation once one might not
            end before its lease's maximum age.
        poll_interval: PollIntervalMs, in seconds.
    """

    startup: float
    release: float
    generation: float
    poll_interval: float


class WorkerRunner:
    """Drives one worker (:class:`WorkerSlot`) from its request to its end; ``await run()``.

    Args:
        slot: the worker as the pool's matcher knows it (its chart inside).
        driver: the protocol's I/O.
        terms: what the worker is asked (v2 lease terms; v1 ignores them).
        pool: the pool, told of every change and asked when to release.
        observer: hears the worker's life (tracing, cost).
        journal: where the job is written before it is requested (None = nowhere).
        key: the key the job is opened with (journalled by fingerprint).
        endpoint_id: the endpoint (journal, logs).
        swarm_for: a SwarmUI client for a handed-over worker.
        times: the deadlines.
    """

    def __init__(
        self,
        slot: WorkerSlot,
        driver: WorkerDriver,
        terms: LeaseTerms,
        pool: RunnerHost,
        *,
        observer: WorkerObserver,
        journal: LeaseJournal | None,
        key: Secret,
        endpoint_id: str,
        swarm_for: SwarmFactory,
        times: RunnerTimes,
    ) -> None:
        self.slot = slot
        self._driver = driver
        self._terms = terms
        self._pool = pool
        self._observer = observer
        self._journal = journal
        self._key = key
        self._endpoint_id = endpoint_id
        self._swarm_for = swarm_for
        self._times = times
        self._changed = anyio.Event()
        self.ended = anyio.Event()
        self._job: Job | None = None
        self._handle: WorkerHandle | None = None
        self._entry: int | None = None
        self._job_unknown = False  # /run failed in a way that may still have created a job
        self._end_confirmed = False  # RunPod confirmed the job ended (cancelled or by itself)
        self._ended_by_itself = False
        self._booting_since: float | None = None
        self._lease_started_at: float | None = None  # None: not handed over here (adopted)

    @property
    def handle(self) -> WorkerHandle | None:
        """The worker, once handed over."""
        return self._handle

    @property
    def observer(self) -> WorkerObserver:
        """The worker's observer (tracing, cost)."""
        return self._observer

    def poke(self) -> None:
        """Something the runner waits on changed (a decision, a seat, the floor)."""
        event, self._changed = self._changed, anyio.Event()
        event.set()

    async def run(self) -> None:
        """The worker's whole life; returns once it ended (released or lost)."""
        failure: BaseException | None = None
        with self._observer.active():
            try:
                if await self._bring_up():
                    await self._hold()
            except anyio.get_cancelled_exc_class():
                failure = OrchestratorError("swarmpod stopped while holding the worker")
                raise
            except Exception as exc:
                failure = exc
            finally:
                with anyio.CancelScope(shield=True):
                    await self._finish(failure)

    # --- bringing it up ---------------------------------------------------------------------

    async def _bring_up(self) -> bool:
        """Request the worker and wait until it is warm; False when it went before (withdrawn,
        given up, or the pool closed)."""
        chart = self.slot.chart
        if self._journal is not None:
            self._entry = await self._journal.begin(self._endpoint_id, self._driver.name, self._key)
        job = await self._request()
        self._job = self.slot.job = job
        await self._journal_job(job.id)
        chart.send("submitted")
        self._set_reason(WaitReason.QUEUED)
        log.info("[RunPodServerless] %s requested on %s", self.slot.label, self._endpoint_id)
        if self._pool.closing:
            chart.send("release")
        self._pool.changed()
        handle = await self._await_handover(job)
        if handle is None:
            return False
        self._handle = handle
        await self._journal_job(handle.hold_job_id)
        chart.send("handed_over")
        self._lease_started_at = anyio.current_time()
        self._observer.handed_over(handle.worker_id)
        self._pool.confirmed(self._driver.name)
        self._set_reason(WaitReason.BOOTING)
        capacity = await self._until_swarm_ready(handle)
        now = anyio.current_time()
        chart.send("loaded")
        self._observer.ready(now)
        self._pool.ready(self.slot, capacity, now)
        return True

    async def _request(self) -> Job:
        """``/run`` the job. Never abandoned half-way: a job RunPod created is always learnt
        (then used or cancelled), so the request is shielded from cancellation and bounded by
        the client's own request timeout. When it fails in a way that may still have created
        a job, the journal entry stays open."""
        with anyio.CancelScope(shield=True):
            try:
                job = await self._driver.request(self._terms)
            except OrchestratorError as exc:
                self._job_unknown = not _surely_not_created(exc)
                raise
        return job

    async def _await_handover(self, job: Job) -> WorkerHandle | None:
        """Poll until the worker is handed over; None when it went first (withdrawn, given up).

        A poll is never abandoned (a ``/stream`` answer is read once): what the pool decides
        meanwhile (withdraw, give up) runs beside the polls and they answer the job's end.
        """
        handle: WorkerHandle | None = None
        failure: Exception | None = None
        async with anyio.create_task_group() as beside:
            beside.start_soon(self._carry_out_decisions)
            beside.start_soon(self._diagnose_early)
            try:
                handle = await self._poll_until_handed_over(job)
            except Exception as exc:  # re-raised below, not wrapped in an exception group
                failure = exc
            beside.cancel_scope.cancel()
        if failure is not None:
            raise failure
        return handle

    async def _poll_until_handed_over(self, job: Job) -> WorkerHandle | None:
        chart = self.slot.chart
        late_at = self.slot.requested_at + self._pool.late_after_s()
        while True:
            if self._gone_before_handover():
                return None
            now = anyio.current_time()
            lost_at = math.inf
            if self._booting_since is not None:
                lost_at = self._booting_since + self._times.startup
            if now >= lost_at - 1e-3:
                raise WorkerNotReadyError(
                    self._times.startup,
                    last_status=job.status,
                    phase=Phase.POLLING,
                    job_id=job.id,
                )
            until = late_at if now < late_at - 5 else now + _LATE_POLL_S
            try:
                polled = await self._driver.poll(job, wait_s=min(until, lost_at) - now)
            except OrchestratorError:
                await self._until_decided()
                if self._gone_before_handover():
                    return None  # the poll answered the end of a job withdrawn or given up
                raise
            job = self._job = self.slot.job = polled.job
            await self._until_decided()
            if self._gone_before_handover():
                return None
            if polled.answer_lost and chart.state_id in ("queued", "booting"):
                chart.send("stall")
                self._pool.changed()
            if polled.running:
                self._seen_running()
            if polled.handle is not None:
                return polled.handle
            if anyio.current_time() >= late_at - 1e-3:
                self._pool.changed()  # late: no longer counted on
                if chart.state_id == "queued":
                    self._diagnosed(await self._pool.diagnose())

    async def until_decided(self) -> None:
        """Wait while a withdrawal or a give-up decided by the pool is carried out."""
        while self.slot.chart.state_id in ("withdrawing", "draining") and not self.ended.is_set():
            await self._changed.wait()

    async def _until_decided(self) -> None:
        """Wait while a withdrawal runs: its outcome decides what a poll's answer means."""
        while self.slot.chart.state_id == "withdrawing":
            await self._changed.wait()

    def _gone_before_handover(self) -> bool:
        return self.slot.chart.is_terminated or self.slot.chart.state_id == "draining"

    def _seen_running(self) -> None:
        """RunPod runs the job: a worker is assigned (and bills) and boots."""
        if self.slot.chart.state_id == "queued":
            self.slot.chart.send("assigned")
            self._booting_since = anyio.current_time()
            self._set_reason(WaitReason.BOOTING)
            self._pool.changed()

    async def _carry_out_decisions(self) -> None:
        """Beside the polls: withdraw a request the pool no longer needs, release one it gave
        up (the pool already moved the chart; this does the I/O and sends the outcome)."""
        chart = self.slot.chart
        assert self._job is not None
        while True:
            if chart.state_id == "withdrawing":
                with anyio.CancelScope(shield=True):
                    outcome = await self._withdraw(self._job.id)
                if isinstance(outcome, Kept):
                    chart.send("assigned")  # a worker bills for it already: kept
                    self._booting_since = anyio.current_time()
                    self._set_reason(WaitReason.BOOTING)
                    log.info("[RunPodServerless] %s already has a worker; kept", self.slot.label)
                    self._pool.changed()
                    self.poke()
                else:
                    self._answered(outcome)
                    chart.send("withdrawn")
                    log.info("[RunPodServerless] %s withdrawn while still queued", self.slot.label)
                    self.poke()
                    return
            elif chart.state_id == "draining":
                with anyio.CancelScope(shield=True):
                    self._answered(await self._release())
                log.info("[RunPodServerless] %s given up before it was ready", self.slot.label)
                self.poke()
                return
            await self._changed.wait()

    async def _withdraw(self, job_id: str) -> Released | Kept:
        try:
            return await self._driver.withdraw(job_id)
        except OrchestratorError as exc:
            log.warning("[RunPodServerless] withdrawing %s: %s", self.slot.label, exc)
            return Kept()

    async def _diagnose_early(self) -> None:
        """A v1 wake-up, a few seconds in (RunPod's scaler starts a worker after ~4 s): is a
        worker booting for it, or why does it still wait (throttled, crash-looping)? The job
        itself stays IN_QUEUE until the booted worker takes it, so only ``/health`` tells. A
        v2 lease waits in one long-poll instead (its diagnosis comes if it is late): each call
        counts, and a lease's boot costs one ``/run``, one ``/stream`` and one ``/cancel``."""
        if self._driver.name != "v1":
            return
        await anyio.sleep(_EARLY_DIAGNOSIS_S)
        if self.slot.chart.state_id == "queued":
            self._diagnosed(await self._pool.diagnose())

    def _diagnosed(self, reason: WaitReason) -> None:
        """What ``/health`` says of a queued request: a worker initializing is its boot (a v1
        wake-up stays queued while its worker boots: the handler starts with SwarmUI, and the
        job can still be withdrawn), else why none starts."""
        self._set_reason(reason)

    async def _until_swarm_ready(self, handle: WorkerHandle) -> int:
        """Open a session and wait until no backend loads; bounded like the boot."""
        started = self._booting_since or anyio.current_time()
        swarm = self._swarm_for(handle)
        with anyio.move_on_after(max(0.0, started + self._times.startup - anyio.current_time())):
            try:
                capacity = await wait_until_swarm_ready(
                    swarm,
                    poll_interval=self._times.poll_interval,
                    on_loading=lambda: self._set_reason(WaitReason.MODEL_LOADING),
                )
            except OrchestratorError as exc:  # the worker's SwarmUI failed its ready check
                known = exc.in_context(phase=Phase.READY, worker_id=handle.worker_id)
                if known is exc:
                    raise
                raise known from exc
            self.slot.session_id = swarm.session_id
            return capacity if self._driver.seats is None else self._driver.seats
        raise WorkerNotReadyError(
            self._times.startup, phase=Phase.READY, worker_id=handle.worker_id
        )

    # --- holding it warm -----------------------------------------------------------------

    async def _hold(self) -> None:
        """Keep the warm worker until it is released or ends its job itself."""
        assert self._handle is not None
        ended = anyio.Event()
        silent = anyio.Event()
        failure: Exception | None = None
        async with anyio.create_task_group() as beside:

            async def watch() -> None:
                nonlocal failure
                assert self._handle is not None
                watched = Watched.ENDED
                try:
                    watched = await self._driver.watch(
                        self._handle, self._journal_job, self._answerer(self._handle)
                    )
                except Exception as exc:  # re-raised below, not wrapped in an exception group
                    failure = exc
                (silent if watched is Watched.SILENT else ended).set()
                self.poke()

            beside.start_soon(watch)
            await self._until_released(ended, silent)
            beside.cancel_scope.cancel()
        if failure is not None and not self.slot.chart.is_terminated:
            raise failure

    def _ends_itself_at(self) -> float:
        """When an idle lease's worker would end it itself, less a margin: its startup grace
        after the lease started until its first generation, then its idle time after the last
        one (inf: the worker never does, or the lease started elsewhere)."""
        started = self._lease_started_at
        if not self._driver.retires or started is None:
            return math.inf
        slot = self.slot
        if slot.served == 0 and slot.idle_since <= slot.warm_at:  # no generation, anywhere
            ends = started + self._terms.startup_grace_seconds
        else:
            ends = slot.idle_since + self._terms.idle_seconds
        return ends - _SELF_END_MARGIN_S

    def _answerer(self, handle: WorkerHandle) -> Answers:
        """Asks the worker's SwarmUI for its status (one request through its gateway, bounded
        like the probe's interval): whether it answered. A busy worker is not asked: its
        generations speak for it (one that fails to reach it retires it)."""
        swarm = self._swarm_for(handle)

        async def answers() -> bool:
            if self.slot.busy:
                return True
            with anyio.move_on_after(PROBE_INTERVAL_S):
                try:
                    await swarm.get_current_status()
                except OrchestratorError:
                    return False
                return True
            return False

        return answers

    async def _until_released(self, ended: anyio.Event, silent: anyio.Event) -> None:
        chart = self.slot.chart
        retire_at = math.inf
        if self._driver.retires:
            retire_at = (
                self.slot.requested_at
                + self._terms.max_lease_seconds
                - self._times.generation
                - RECYCLE_MARGIN_S
            )
        while True:
            if ended.is_set():
                if chart.state_id in ("idle", "busy", "retiring"):
                    self._ended_by_itself = self._end_confirmed = True
                    chart.send("ended")
                    log.info("[RunPodServerless] %s ended by its worker", self.slot.label)
                    self._pool.changed()
                return
            now = anyio.current_time()
            if silent.is_set() and chart.is_warm:
                chart.send("retire")
                log.warning(
                    "[RunPodServerless] %s stopped answering while RunPod runs its job; retired",
                    self.slot.label,
                )
                self._pool.changed()
            if now >= retire_at and chart.is_warm:
                chart.send("retire")
                self._pool.changed()
            deadline = math.inf if chart.state_id == "retiring" else retire_at
            if self.slot.busy == 0:
                release_at = (
                    -math.inf
                    if chart.state_id == "retiring"
                    else min(self._pool.release_at(self.slot), self._ends_itself_at())
                )
                if now >= release_at and await self._pool.may_release(self.slot):
                    await self._release_warm()
                    return
                deadline = min(deadline, release_at)
            changed = self._changed
            with anyio.move_on_after(max(0.0, deadline - now)):
                await changed.wait()

    async def _release_warm(self) -> None:
        self.slot.chart.send("release")
        self._pool.changed()
        with anyio.CancelScope(shield=True):
            self._answered(await self._release())
        log.info(
            "[RunPodServerless] %s released (worker %s)",
            self.slot.label,
            self._handle.worker_id if self._handle else "?",
        )

    async def _release(self) -> Released:
        """Cancel what holds the worker, shielded and bounded by ReleaseTimeoutSec."""
        released = Released(confirmed=False)
        with anyio.CancelScope(shield=True), anyio.move_on_after(self._times.release):
            released = await self._driver.release(self._job, self._handle)
        return released

    def _answered(self, released: Released) -> None:
        """RunPod answered a cancel: the job's end is confirmed (or not)."""
        chart = self.slot.chart
        if not released.confirmed:
            return
        self._end_confirmed = True
        self._observer.job_answered(released.delay_ms, released.execution_ms)
        if chart.state_id == "draining":
            chart.send("ended")

    # --- the end ---------------------------------------------------------------------------

    async def _finish(self, failure: BaseException | None) -> None:
        """The worker's life ended: cancel a job that may still bill, close the journal entry
        and the bill, tell the pool."""
        chart = self.slot.chart
        if not chart.is_terminated:
            if self._job is not None and not self._end_confirmed:
                self._answered(await self._release())
            if not chart.is_terminated:
                chart.send("lose")
        if failure is not None and not isinstance(failure, WorkerNotReadyError):
            log.warning("[RunPodServerless] %s lost: %s", self.slot.label, failure)
        elif failure is not None:
            log.warning("[RunPodServerless] %s lost: %s; replaced", self.slot.label, failure)
        job = self._job
        self._observer.stopped(
            WorkerStop(
                at=anyio.current_time() if job is not None else self.slot.requested_at,
                job_existed=job is not None or self._job_unknown,
                ended_by_itself=self._ended_by_itself or not self._end_confirmed,
                expected_boot_s=self._pool.expected_cold_start_s,
                generations=self.slot.served,
                lease_id=job.id if job is not None else None,
                worker_id=self._handle.worker_id if self._handle else None,
                failure=failure,
            )
        )
        await self._close_journal(failure)
        self.ended.set()
        self._pool.gone(self.slot, failure if isinstance(failure, Exception) else None)

    async def _close_journal(self, failure: BaseException | None) -> None:
        if self._journal is None or self._entry is None:
            return
        settled = self._end_confirmed or (self._job is None and not self._job_unknown)
        if settled:
            outcome = "lost" if failure is not None else _outcome(self.slot)
            try:
                await self._journal.close(self._entry, outcome)
            except DatabaseError as exc:  # the entry stays open: the next start deals with it
                log.error("[RunPodServerless] journal: closing %s: %s", self.slot.label, exc)
        else:
            log.warning(
                "[RunPodServerless] %s could not be cancelled (or its /run answer was lost); "
                "the journal keeps it open so the next start deals with it",
                self.slot.label,
            )

    async def _journal_job(self, job_id: str | None) -> None:
        """Record the job that holds the worker, shielded: a job RunPod made is never left
        out of the journal."""
        if self._journal is not None and self._entry is not None and job_id:
            with anyio.CancelScope(shield=True):
                await self._journal.attach(self._entry, job_id)

    def _set_reason(self, reason: WaitReason) -> None:
        if self.slot.reason is not reason:
            self.slot.reason = reason
            self._pool.changed()


def _outcome(slot: WorkerSlot) -> str:
    if slot.warm_at == math.inf:
        return "withdrawn"
    return "released"


def _surely_not_created(failure: OrchestratorError) -> bool:
    """Whether a failed ``/run`` surely created no job (RunPod refused or did not process it)."""
    status = failure.status if isinstance(failure, RunPodError) else None
    return status is not None and (400 <= status < 500 or status in (502, 503, 504))

"""The library face: ``async with Orchestrator(settings) as orch: await orch.generate(...)``."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, cast

import aiohttp
import anyio
import anyio.abc

from observability import (
    CostLedger,
    EndpointBilling,
    GenerationCost,
    GenerationTraces,
    PoolReading,
    Telemetry,
    WorkerBill,
    WorkerTraces,
    record_api_call,
    record_retry,
    record_settled,
)

from ._progress import ProgressCallback, ProgressReporter
from ._result import GenerationResult, result_of
from ._retry import RetryPolicy
from ._state import default_state_file
from .engine import GenerationPlan, GenerationRequest, GenerationRun
from .errors import DatabaseError, Phase, SettingsError, WorkerNotReadyError
from .keys import KeyProvider, resolve_runpod_key
from .runpod import RunPodClient
from .secrets import Secret
from .settings import Settings
from .store import StateStore, opened_store
from .swarmui import SwarmUIClient, check_params
from .workers import (
    Admission,
    AutoStation,
    GpuBudget,
    IdleWindow,
    JournalEntry,
    LeaseJournal,
    PoolStatus,
    PrewarmSchedule,
    Recovery,
    RunnerTimes,
    SharedPools,
    Station,
    V1Protocol,
    V2Protocol,
    WorkerHandle,
    WorkerPool,
    WorkerSession,
    recover_leases,
)

if TYPE_CHECKING:
    from .store import PostgresStore

__all__ = ["Orchestrator", "OrchestratorStatus"]

log = logging.getLogger("swarmpod")

# A keepalive outlives the generation's deadline plus the release, with room to spare.
_HOLD_MARGIN_S = 60.0
# How often a prewarm schedule is looked at (loop seconds).
_SCHEDULE_TICK_S = 30.0
# A remembered worker protocol is detected again after this long (an endpoint may be upgraded).
_REDETECT_AFTER_S = 24 * 3600.0
# Connections beyond one long-poll and one short call per worker and one per generation.
_SPARE_CONNECTIONS = 8


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class OrchestratorStatus:
    """What the orchestrator holds and does right now (for status routes and CLIs).

    Attributes:
        endpoint_id: the endpoint.
        protocol: the worker protocol in use (``v1``, ``v2``, or ``auto`` before detection).
        in_flight: generations admitted (MaxConcurrent slots taken).
        queued: generations waiting behind MaxConcurrent.
        warm: warm workers held.
        busy: generations running on them.
        booting: workers requested and not ready yet.
        waiting_for_worker: generations waiting for a worker.
        idle_window_s: the idle window now (IdleTimeoutSec, or the measured cold start).
        last_cold_start_s: the endpoint's expected cold start (the longest recent one, or before
            one the longest ordinary one, 90 s).
    """

    endpoint_id: str
    protocol: str
    in_flight: int
    queued: int
    warm: int
    busy: int
    booting: int
    waiting_for_worker: int
    idle_window_s: float
    last_cold_start_s: float


class Orchestrator:
    """Runs SwarmUI generations on a RunPod serverless endpoint, keeping workers warm.

    >>> async def main() -> None:                                    # doctest: +SKIP
    ...     async with Orchestrator(Settings.load()) as orch:
    ...         result = await orch.generate({"prompt": "a lighthouse", "steps": 20}, images=2)
    ...         print(result.seeds, result.cold_start, result.timings.startup)

    On entry it opens the state file (lease journal, GPU budgets) and cancels every lease a
    previous process left open (:attr:`recovered`); on exit it releases every worker it holds.

    Args:
        settings: the backend's settings (EndpointId is required here).
        keys: where users' own RunPod keys come from when the backend has none.
        session: an aiohttp session to use (the orchestrator makes and closes its own if None).
        retry: how RunPod calls are retried on 429/5xx.
        wall_clock: the wall clock (UTC) for prewarm schedules and daily budgets; default: a
            clock that starts at the real time and then follows the event loop (so virtual
            time moves it too).
        telemetry: where spans and metrics go (:class:`observability.Telemetry`); default:
            the process's (``Telemetry.default()``: what the CLI configured, else the global
            OpenTelemetry providers).
        store: the state store to keep the journal and budgets in (a service shares one);
            default: its own, PostgreSQL with DatabaseUrl, else the StateFile.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        keys: KeyProvider | None = None,
        session: aiohttp.ClientSession | None = None,
        retry: RetryPolicy | None = None,
        wall_clock: Callable[[], dt.datetime] | None = None,
        telemetry: Telemetry | None = None,
        store: StateStore | None = None,
    ) -> None:
        if settings.endpoint_id is None:
            raise SettingsError("EndpointId", "is required (the RunPod serverless endpoint id)")
        self.settings = settings
        self._endpoint_id: str = settings.endpoint_id
        self._keys = keys
        self._session = session
        self._own_session = session is None
        self._retry = retry or RetryPolicy()
        self._wall_clock = wall_clock
        self.admission = Admission(settings.max_concurrent)
        self.idle = IdleWindow(settings.idle_timeout_sec)
        self.schedule = PrewarmSchedule.parse(settings.prewarm)
        self.recovered: list[Recovery] = []
        self._stations: dict[Secret, Station] = {}
        self._opening = anyio.Lock()
        self._protocol: str = settings.worker_protocol
        self._store = store
        self._shared: SharedPools | None = None
        self._journal: LeaseJournal | None = None
        self._budget: GpuBudget | None = None
        self._tasks: anyio.abc.TaskGroup | None = None
        self._stack: AsyncExitStack | None = None
        self.telemetry = telemetry or Telemetry.default()
        self.costs = CostLedger(
            EndpointBilling(
                price_per_hour=settings.gpu_price_per_hour,
                queue_delay_s=settings.endpoint_queue_delay_sec,
                idle_timeout_s=settings.endpoint_idle_timeout_sec,
            ),
            on_settled=self._settled,
        )
        self._generations = GenerationTraces(self.telemetry, self.costs)
        self._workers = WorkerTraces(self.telemetry, self.costs)
        self._charged: dict[str, float] = {}  # generation id → GPU-s charged before final

    async def __aenter__(self) -> Self:
        """Open the state file, the HTTP session and the task group; recover what a previous
        process left open. Whatever fails, what was opened is closed again."""
        async with AsyncExitStack() as stack:
            store = self._store
            if store is None:  # an unusable file, or an unreachable database, stops here
                store = await stack.enter_async_context(
                    opened_store(
                        self.settings.database_url,
                        self.settings.state_file or str(default_state_file()),
                        heartbeat_s=self.settings.replica_heartbeat_sec,
                    )
                )
            self._journal = await LeaseJournal.open(store)
            stack.callback(self._forget_stores)
            self._budget = await GpuBudget.open(
                store, limit_s=self.settings.daily_gpu_seconds_per_user, now=self._now
            )
            if self._session is None:
                self._session = self._new_session()
                stack.push_async_callback(self._close_own_session)
            if self._protocol == "auto":
                self._protocol = await self._remembered_protocol(self._journal)
            self._tasks = await stack.enter_async_context(anyio.create_task_group())
            stack.push_async_callback(self._stop_tasks)
            if store.shared:  # PostgreSQL: the replicas share the warm pool
                self._shared = self._share_pools(cast("PostgresStore", store), self._journal)
                await self._shared.start(self._tasks)
            if self._wall_clock is None:
                started_wall, started_loop = _utc_now(), anyio.current_time()
                self._wall_clock = lambda: (
                    started_wall + dt.timedelta(seconds=anyio.current_time() - started_loop)
                )
            if self.settings.runpod_api_key:
                await self.recover([self.settings.runpod_api_key])
            if self.schedule.rules:
                self._tasks.start_soon(self._follow_schedule)
            stack.callback(self.telemetry.instruments.watch(self._reading))
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Release every worker (generations in flight end first), then close what
        :meth:`__aenter__` opened."""
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    def _new_session(self) -> aiohttp.ClientSession:
        """The orchestrator's own HTTP session, with room for every long-poll (one per worker,
        plus its short calls) and every generation forwarded at once (MaxConcurrent)."""
        limit = 2 * self.settings.max_workers + self.settings.max_concurrent + _SPARE_CONNECTIONS
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=limit),
            timeout=aiohttp.ClientTimeout(total=None),
        )

    async def _close_own_session(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _forget_stores(self) -> None:
        self._journal = self._budget = None  # their store is closed by whoever opened it

    async def _stop_tasks(self) -> None:
        with anyio.CancelScope(shield=True):
            await self.drain()
        if self._tasks is not None:
            self._tasks.cancel_scope.cancel()
            self._tasks = None

    def __repr__(self) -> str:
        return (
            f"Orchestrator(endpoint_id={self._endpoint_id!r}, "
            f"base_url={self.settings.runpod_base_url!r}, protocol={self.protocol!r}, "
            f"in_flight={self.admission.in_flight})"
        )

    @property
    def protocol(self) -> str:
        """The worker protocol in use: ``v1``, ``v2``, or ``auto`` until it is known."""
        return self._protocol

    async def generate(
        self,
        params: Mapping[str, Any],
        *,
        images: int | None = None,
        user: str | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> GenerationResult:
        """Generate images with SwarmUI text-to-image ``params`` on a RunPod worker.

        Takes a free warm worker, or gets one (a lease, or a v1 wake-up) and waits until its
        SwarmUI answers (StartupTimeoutSec); generates (GenerationTimeoutSec); gives the worker
        back on every path (it stays warm for the idle window).

        Args:
            params: T2I parameters by SwarmUI id, passed through as given (unknown ids too).
            images: how many images; default ``params["images"]`` or 1.
            user: the calling user; their own key is used when the backend has none, and
                their daily GPU budget is checked and charged.
            on_progress: called with each progress event.

        Raises:
            InvalidParameterError: a parameter is outside SwarmUI's limits (SwarmUI's own
                text; nothing was asked of RunPod).
            BudgetExceededError: the user spent today's GPU-seconds (DailyGpuSecondsPerUser).
            OrchestratorError: a subclass saying what failed, in which phase, and whether a
                retry may help. The worker has been given back when it is raised.
        """
        if self._session is None or self._budget is None:
            raise RuntimeError("use 'async with Orchestrator(...)' before generate()")
        check_params(params, images=images)  # SwarmUI's limits, before any RunPod call
        passed = dict(params)
        count = images if images is not None else int(passed.pop("images", 1))
        passed.pop("images", None)
        if count < 1:
            raise ValueError(f"images must be >= 1, got {count}")
        await self._budget.check(user)
        session = self._session

        async def connect() -> Station:
            key = await resolve_runpod_key(self.settings.runpod_api_key, user, self._keys)
            return await self._station_for(session, key)

        run = GenerationRun(
            GenerationPlan(
                GenerationRequest(params=passed, images=count, user=user),
                connect=connect,
                http=session,
                admission=self.admission,
                timeouts=self.settings.timeouts,
                poll_interval=self.settings.poll_interval,
                transport=self.settings.transport,
                endpoint_id=self._endpoint_id,
            )
        )
        trace = self._generations.observe(run)
        run.observe(trace)
        if on_progress is not None:
            run.observe(ProgressReporter(on_progress))
        try:
            await run.run()
        finally:
            with anyio.CancelScope(shield=True):  # charged even when the caller gave up
                await self._charge(user, run, trace.cost)
        return result_of(run, trace.cost)

    async def prewarm(
        self, workers: int = 1, *, user: str | None = None, hold_s: float | None = None
    ) -> int:
        """Wake ``workers`` workers ahead of demand (e.g. when a user opens the UI).

        Returns at once with how many workers were requested: leases already warm or coming
        count toward ``workers`` and ``MaxWorkers`` caps it. A v1 endpoint holds one worker:
        it is woken (or kept) and 1 is returned. Each stays warm at least ``hold_s`` (default:
        the idle window) after it is ready.

        Raises:
            BudgetExceededError: ``user`` spent today's GPU-seconds.
            MissingApiKeyError: neither the backend nor ``user`` has a RunPod key.
        """
        if self._session is None or self._budget is None or self._tasks is None:
            raise RuntimeError("use 'async with Orchestrator(...)' before prewarm()")
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        await self._budget.check(user)
        key = await resolve_runpod_key(self.settings.runpod_api_key, user, self._keys)
        station = await self._station_for(self._session, key)
        if station.protocol == "v1":  # the one v1 worker, woken or kept
            station.prewarm(1, hold_s=hold_s)
            return 1
        return station.prewarm(workers, hold_s=hold_s)

    @contextlib.asynccontextmanager
    async def hold_worker(self, *, user: str | None = None) -> AsyncIterator[SwarmUIClient]:
        """Hold a worker (warm, or woken now) and talk to its SwarmUI directly, then give it back.

        For work that is not a generation, such as model discovery. The worker is given back
        when the block ends, on every path (it then stays warm for the idle window).

        >>> async with orch.hold_worker() as swarm:                      # doctest: +SKIP
        ...     listing = await swarm.list_models(depth=999, data_images=True)

        Raises:
            WorkerNotReadyError: no worker was ready within StartupTimeoutSec.
            MissingApiKeyError: neither the backend nor ``user`` has a RunPod key.
        """
        if self._session is None:
            raise RuntimeError("use 'async with Orchestrator(...)' before hold_worker()")
        key = await resolve_runpod_key(self.settings.runpod_api_key, user, self._keys)
        station = await self._station_for(self._session, key)
        timeouts = self.settings.timeouts
        async with self._worker_session(station, self._session) as use:
            if not use.take_warm():
                with anyio.move_on_after(timeouts.startup):
                    await use.acquire(lambda waiting: None)
                if use.seat is None:
                    raise WorkerNotReadyError(timeouts.startup, phase=Phase.POLLING)
            with anyio.fail_after(timeouts.startup):
                swarm = await use.ready(on_loading=lambda: None)
            yield swarm

    async def recover(self, keys: Iterable[Secret]) -> list[Recovery]:
        """Cancel leases a previous process left open with any of ``keys``; returns the report.

        Called on entry with the backend key; a service calls it again with its users' keys.
        """
        assert self._journal is not None and self._session is not None
        session = self._session

        async def cancel(entry: JournalEntry, key: Secret) -> None:
            await self._client(session, key, endpoint_id=entry.endpoint_id).cancel(
                entry.job_id or ""
            )

        keys = list(keys)
        if self._shared is not None:
            self._shared.know(keys)
        report = await recover_leases(self._journal, keys, cancel)
        self.recovered.extend(report)
        return report

    async def drain(self) -> None:
        """Release every worker held (also done on exit); generations in flight end first."""
        with anyio.move_on_after(self.settings.timeouts.generation):
            await self.admission.until_idle()
        for station in list(self._stations.values()):
            await station.close()

    def status(self) -> OrchestratorStatus:
        """Warm workers, queues and the idle window right now."""
        pools = [station.status() for station in self._stations.values()]
        total = PoolStatus(
            warm=sum(p.warm for p in pools),
            busy=sum(p.busy for p in pools),
            free_seats=sum(p.free_seats for p in pools),
            booting=sum(p.booting for p in pools),
            waiting=sum(p.waiting for p in pools),
            floor=max((p.floor for p in pools), default=0),
        )
        return OrchestratorStatus(
            endpoint_id=self._endpoint_id,
            protocol=self._protocol,
            in_flight=self.admission.in_flight,
            queued=self.admission.waiting,
            warm=total.warm,
            busy=total.busy,
            booting=total.booting,
            waiting_for_worker=total.waiting,
            idle_window_s=self.idle.seconds,
            last_cold_start_s=self.idle.cold_start_s,
        )

    # --- internals ------------------------------------------------------------------------

    def _settled(self, settled: GenerationCost | WorkerBill) -> None:
        """A cost became final: its span and counters, and the rest of its budget charge."""
        if isinstance(settled, GenerationCost):
            self._charge_rest(settled)
        record_settled(self.telemetry, self.costs, settled)

    def _reading(self) -> PoolReading:
        status = self.status()
        return PoolReading(
            endpoint_id=self._endpoint_id,
            warm_workers=status.warm,
            queue_depth=status.queued + status.waiting_for_worker,
        )

    def _now(self) -> dt.datetime:
        return self._wall_clock() if self._wall_clock is not None else _utc_now()

    async def _charge(self, user: str | None, run: GenerationRun, cost: GenerationCost) -> None:
        """Charge the user's budget with the GPU-seconds this generation kept a worker busy
        (only counted when a budget is set: no store write per generation otherwise). Its
        share of the worker's idle time follows when the worker's bill closes (:meth:`_settled`).
        """
        if self._budget is not None and self._budget.limit_s > 0:
            if not cost.final:
                self._charged[run.generation_id] = run.gpu_seconds
            budget = self._budget
            await self._stored(lambda: budget.charge(user, run.gpu_seconds))

    def _charge_rest(self, cost: GenerationCost) -> None:
        """A generation's cost became final: charge what its first charge did not cover
        (written by a task: the bill closes in a synchronous callback)."""
        charged = self._charged.pop(cost.generation_id, None)
        if charged is not None and self._budget is not None and self._tasks is not None:
            budget = self._budget
            rest = cost.gpu_seconds - charged
            self._tasks.start_soon(self._stored, lambda: budget.charge(cost.user, rest))

    async def _stored(self, write: Callable[[], Awaitable[None]]) -> None:
        """One store write, shielded and bounded; a failure is logged (the generation or
        the worker it accounts for is over either way)."""
        with anyio.CancelScope(shield=True), anyio.move_on_after(self.settings.request_timeout_sec):
            try:
                await write()
            except DatabaseError as exc:
                log.error("[RunPodServerless] state store: %s", exc)

    def _client(
        self, session: aiohttp.ClientSession, key: Secret, *, endpoint_id: str | None = None
    ) -> RunPodClient:
        return RunPodClient(
            session,
            endpoint_id or self._endpoint_id,
            key,
            base_url=self.settings.runpod_base_url,
            retry=self._retry,
            request_timeout=self.settings.request_timeout_sec,
            on_call=lambda call: record_api_call(self.telemetry, call),
            on_retry=lambda retry: record_retry(self.telemetry, retry),
        )

    async def _station_for(self, session: aiohttp.ClientSession, key: Secret) -> Station:
        """The station of this endpoint for ``key`` (opened on first use)."""
        station = self._stations.get(key)
        if station is not None:
            return station
        async with self._opening:
            station = self._stations.get(key)
            if station is not None:
                return station
            configured = self.settings.worker_protocol
            shared = self._shared is not None and "v2" in (configured, self._protocol)
            if shared:
                station = await self._open_shared_pool(session, key)
            elif configured != "auto":
                station = await self._open_pool(session, key, configured)
            else:  # leases first (one probe at a time) unless v1 is remembered; either switches

                async def open_pool(protocol: str) -> WorkerPool:
                    return await self._open_pool(session, key, protocol)

                first = "v1" if self._protocol == "v1" else "v2"
                station = AutoStation(
                    await self._open_pool(session, key, first, probing=self._protocol == "auto"),
                    open_pool=open_pool,
                    on_detected=self._detected,
                )
            self._stations[key] = station
        return station

    async def _open_pool(
        self, session: aiohttp.ClientSession, key: Secret, protocol: str, *, probing: bool = False
    ) -> WorkerPool:
        """A pool of ``protocol`` workers for ``key``, its task group started."""
        assert self._tasks is not None
        timeouts = self.settings.timeouts
        client = self._client(session, key)
        poll = self.settings.poll_interval
        worker_protocol: V1Protocol | V2Protocol
        if protocol == "v1":
            hold = timeouts.generation + timeouts.release + _HOLD_MARGIN_S
            worker_protocol = V1Protocol(client, self.settings.use_async, poll, hold_seconds=hold)
        else:
            worker_protocol = V2Protocol(client, poll_interval=poll)

        def swarm_for(handle: WorkerHandle) -> SwarmUIClient:
            return handle.swarm_client(session, session_id=None, request_timeout=timeouts.request)

        pool = WorkerPool(
            worker_protocol,
            key=key,
            endpoint_id=self._endpoint_id,
            idle=self.idle,
            max_workers=self.settings.max_workers,
            times=RunnerTimes(
                startup=timeouts.startup,
                release=timeouts.release,
                generation=timeouts.generation,
                poll_interval=poll,
            ),
            swarm_for=swarm_for,
            journal=self._journal,
            probing=probing,
            on_confirmed=self._detected,
            observe=self._workers,
        )
        await self._tasks.start(pool.serve)
        return pool

    def _share_pools(self, store: PostgresStore, journal: LeaseJournal) -> SharedPools:
        """This replica's side of the endpoint's shared pools (``_cluster``)."""
        session = self._session
        assert session is not None

        async def station_of(key: Secret) -> Station:
            return await self._station_for(session, key)

        shared = SharedPools(
            store,
            journal,
            endpoint_id=self._endpoint_id,
            station_of=station_of,
            recover=self.recover,
        )
        if self.settings.runpod_api_key:
            shared.know([self.settings.runpod_api_key])
        return shared

    async def _open_shared_pool(self, session: aiohttp.ClientSession, key: Secret) -> Station:
        """The lease pool of ``key`` that every replica shares, its task group started."""
        assert self._tasks is not None and self._shared is not None
        timeouts = self.settings.timeouts

        def swarm_for(handle: WorkerHandle) -> SwarmUIClient:
            return handle.swarm_client(session, session_id=None, request_timeout=timeouts.request)

        pool = self._shared.pool(
            V2Protocol(self._client(session, key), poll_interval=self.settings.poll_interval),
            key=key,
            idle=self.idle,
            max_workers=self.settings.max_workers,
            times=RunnerTimes(
                startup=timeouts.startup,
                release=timeouts.release,
                generation=timeouts.generation,
                poll_interval=self.settings.poll_interval,
            ),
            swarm_for=swarm_for,
            on_confirmed=self._detected,
            observe=self._workers,
        )
        await self._tasks.start(pool.serve)
        return pool

    def _worker_session(self, station: Station, session: aiohttp.ClientSession) -> WorkerSession:
        timeouts = self.settings.timeouts
        return WorkerSession(
            station,
            http=session,
            request_timeout=timeouts.request,
            release_timeout=timeouts.release,
            poll_interval=self.settings.poll_interval,
        )

    async def _remembered_protocol(self, journal: LeaseJournal) -> str:
        """The protocol remembered for the endpoint, unless it is old: an endpoint upgraded
        to leases is then found again (one lease probe) rather than kept on v1 forever."""
        remembered = await journal.known_protocol(self._endpoint_id)
        if remembered is None:
            return "auto"
        protocol, detected_at = remembered
        age_s = (_utc_now() - detected_at).total_seconds()
        if age_s > _REDETECT_AFTER_S:
            log.info(
                "[RunPodServerless] %s was found to speak %s %.0f h ago; detecting it again",
                self._endpoint_id,
                protocol,
                age_s / 3600,
            )
            return "auto"
        return protocol

    def _detected(self, protocol: str) -> None:
        self._protocol = protocol
        if self._journal is not None and self._tasks is not None:
            journal = self._journal
            self._tasks.start_soon(
                self._stored, lambda: journal.remember_protocol(self._endpoint_id, protocol)
            )

    async def _follow_schedule(self) -> None:
        """Keep the prewarm schedule's worker count (backend key only; users prewarm apart)."""
        key = self.settings.runpod_api_key
        if not key or self._session is None:
            log.warning("[RunPodServerless] Prewarm needs the backend's RunPodApiKey; ignored")
            return
        station = await self._station_for(self._session, key)
        while True:
            station.set_floor(self.schedule.workers_at(self._now()))
            await anyio.sleep(_SCHEDULE_TICK_S)

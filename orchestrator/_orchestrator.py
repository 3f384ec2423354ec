"""The library face: ``async with Orchestrator(settings) as orch: await orch.generate(...)``."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import aiohttp
import anyio
import anyio.abc
from opentelemetry import trace

from observability import (
    CostLedger,
    EndpointBilling,
    GenerationCost,
    PoolReading,
    Telemetry,
    WorkerBill,
    record_cost_span,
    span_attributes,
    span_time_ns,
)

from ._progress import ProgressCallback
from ._result import GenerationResult
from ._retry import RetryPolicy
from ._state import default_state_file
from .engine import ChartStock, GenerationRequest, GenerationRun
from .errors import Phase, SettingsError, TransportError, WorkerNotReadyError
from .keys import KeyProvider, resolve_runpod_key
from .runpod import ApiCall, RunPodClient
from .secrets import Secret
from .settings import Settings
from .swarmui import SwarmUIClient, check_params
from .workers import (
    Admission,
    AutoStation,
    GpuBudget,
    IdleWindow,
    JournalEntry,
    LeaseJournal,
    LeasePool,
    PoolStatus,
    PrewarmSchedule,
    Recovery,
    SharedV1Worker,
    Station,
    V1Protocol,
    V2Protocol,
    WorkerHandle,
    recover_leases,
    wait_until_swarm_ready,
)

__all__ = ["Orchestrator", "OrchestratorStatus"]

log = logging.getLogger("swarmpod")

# A keepalive outlives the generation's deadline plus the release, with room to spare.
_HOLD_MARGIN_S = 60.0
# How often a prewarm schedule is looked at (loop seconds).
_SCHEDULE_TICK_S = 30.0


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
        last_cold_start_s: the endpoint's expected cold start (measured mean or assumed).
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
        self._pools: dict[Secret, LeasePool] = {}
        self._protocol: str = settings.worker_protocol
        self._journal: LeaseJournal | None = None
        self._budget: GpuBudget | None = None
        self._tasks: anyio.abc.TaskGroup | None = None
        self.telemetry = telemetry or Telemetry.default()
        self.costs = CostLedger(
            EndpointBilling(
                price_per_hour=settings.gpu_price_per_hour,
                queue_delay_s=settings.endpoint_queue_delay_sec,
                idle_timeout_s=settings.endpoint_idle_timeout_sec,
            ),
            on_settled=self._settled,
        )
        self._charts = ChartStock(tracer=self.telemetry.tracer)
        self._unwatch: Callable[[], None] | None = None
        self._charged: dict[str, float] = {}  # generation id → GPU-s charged before final

    async def __aenter__(self) -> Self:
        state_file = self.settings.state_file or str(default_state_file())
        self._journal = LeaseJournal(state_file)  # an unusable file stops here, nothing open
        self._budget = GpuBudget(
            state_file, limit_s=self.settings.daily_gpu_seconds_per_user, now=self._now
        )
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        if self._protocol == "auto":
            self._protocol = self._journal.known_protocol(self._endpoint_id) or "auto"
        self._tasks = anyio.create_task_group()
        await self._tasks.__aenter__()
        if self._wall_clock is None:
            started_wall, started_loop = _utc_now(), anyio.current_time()
            self._wall_clock = lambda: (
                started_wall + dt.timedelta(seconds=anyio.current_time() - started_loop)
            )
        if self.settings.runpod_api_key:
            await self.recover([self.settings.runpod_api_key])
        if self.schedule.rules:
            self._tasks.start_soon(self._follow_schedule)
        self._charts.refill()
        self._unwatch = self.telemetry.instruments.watch(self._reading)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._tasks is not None:
            with anyio.CancelScope(shield=True):
                await self.drain()
            self._tasks.cancel_scope.cancel()
            await self._tasks.__aexit__(None, None, None)
            self._tasks = None
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        for store in (self._journal, self._budget):
            if store is not None:
                store.close_file()
        self._journal = self._budget = None
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

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
        self._budget.check(user)
        session = self._session

        async def connect() -> Station:
            key = await resolve_runpod_key(self.settings.runpod_api_key, user, self._keys)
            return self._station_for(session, key)

        run = GenerationRun(
            GenerationRequest(params=passed, images=count, user=user),
            connect=connect,
            session=session,
            admission=self.admission,
            timeouts=self.settings.timeouts,
            poll_interval=self.settings.poll_interval,
            transport=self.settings.transport,
            on_progress=on_progress,
            charts=self._charts,
            telemetry=self.telemetry,
            costs=self.costs,
            endpoint_id=self._endpoint_id,
        )
        try:
            result = await run.run()
        finally:
            self._charge(user, run)
            self._charts.refill()
        return result

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
        self._budget.check(user)
        key = await resolve_runpod_key(self.settings.runpod_api_key, user, self._keys)
        station = self._station_for(self._session, key)
        pool = self._pools.get(key)
        if pool is not None and self._protocol != "v1":
            return pool.prewarm(workers, hold_s=hold_s)

        async def wake_and_give_back() -> None:  # v1: the one worker, kept for the idle window
            seat = await station.acquire(lambda waiting: None)
            await station.give_back(seat)

        self._tasks.start_soon(wake_and_give_back)
        return 1

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
        session = self._session
        key = await resolve_runpod_key(self.settings.runpod_api_key, user, self._keys)
        station = self._station_for(session, key)
        timeouts = self.settings.timeouts
        seat = station.try_take()
        if seat is None:
            with anyio.move_on_after(timeouts.startup):
                seat = await station.acquire(lambda waiting: None)
            if seat is None:
                raise WorkerNotReadyError(timeouts.startup, phase=Phase.POLLING)
        broken = False
        try:
            swarm = seat.handle.swarm_client(
                session, session_id=seat.session_id, request_timeout=timeouts.request
            )
            if not seat.checked:
                with anyio.fail_after(timeouts.startup):
                    await wait_until_swarm_ready(
                        swarm, poll_interval=self.settings.poll_interval, on_loading=lambda: None
                    )
            yield swarm
        except TransportError:
            broken = True
            raise
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(timeouts.release):
                await station.give_back(seat, broken=broken)

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

        report = await recover_leases(self._journal, keys, cancel)
        self.recovered.extend(report)
        return report

    async def drain(self) -> None:
        """Release every worker held (also done on exit); generations in flight end first."""
        with anyio.move_on_after(self.settings.timeouts.generation):
            while self.admission.in_flight:  # noqa: ASYNC110 (generations end on their own)
                await anyio.sleep(0.1)
        for station in list(self._stations.values()):
            await station.close()

    def status(self) -> OrchestratorStatus:
        """Warm workers, queues and the idle window right now."""
        pools = [pool.status() for pool in self._pools.values()]
        total = PoolStatus(
            warm=sum(p.warm for p in pools),
            busy=sum(p.busy for p in pools),
            free_seats=sum(p.free_seats for p in pools),
            booting=sum(p.booting for p in pools),
            waiting=sum(p.waiting for p in pools),
            floor=max((p.floor for p in pools), default=0),
        )
        v1_warm = sum(
            1
            for station in self._stations.values()
            if isinstance(station, SharedV1Worker) and station.held is not None
        )
        return OrchestratorStatus(
            endpoint_id=self._endpoint_id,
            protocol=self._protocol,
            in_flight=self.admission.in_flight,
            queued=self.admission.waiting,
            warm=total.warm + v1_warm,
            busy=total.busy,
            booting=total.booting,
            waiting_for_worker=total.waiting,
            idle_window_s=self.idle.seconds,
            last_cold_start_s=self.idle.cold_start_s,
        )

    # --- internals ------------------------------------------------------------------------

    def _called(self, call: ApiCall) -> None:
        """A RunPod API call was answered (or failed): count it, note it on the current span."""
        status = str(call.status) if call.status is not None else "error"
        self.telemetry.instruments.api_calls.add(1, {"route": call.route, "status": status})
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event(
                f"runpod.{call.route}",
                span_attributes(
                    {
                        "http.status": call.status,
                        "attempt": call.attempt,
                        "duration_s": round(call.duration_s, 3),
                        "runpod.job_id": call.job_id,
                        "error": call.error,
                    }
                ),
                timestamp=span_time_ns(),
            )

    def _settled(self, settled: GenerationCost | WorkerBill) -> None:
        """A cost became final: a ``Cost:*`` span in its trace, and the cost counters."""
        instruments = self.telemetry.instruments
        if isinstance(settled, WorkerBill):
            billed = settled.billed_s or 0.0
            labels = {"phase": "unattributed", "user": "", "model": ""}
            instruments.gpu_seconds.add(billed, labels)
            instruments.cost.add(self.costs.billing.usd(billed), {"user": "", "model": ""})
            record_cost_span(self.telemetry.tracer, settled, self.costs.billing)
            return
        self._charge_rest(settled)
        user, model = settled.user or "", settled.model or ""
        for phase, seconds in (
            ("boot", settled.boot_s),
            ("execution", settled.execution_s),
            ("idle_tail", settled.idle_tail_s),
        ):
            instruments.gpu_seconds.add(seconds, {"phase": phase, "user": user, "model": model})
        instruments.cost.add(settled.cost_usd, {"user": user, "model": model})
        record_cost_span(self.telemetry.tracer, settled, self.costs.billing)

    def _reading(self) -> PoolReading:
        status = self.status()
        return PoolReading(
            endpoint_id=self._endpoint_id,
            warm_workers=status.warm,
            queue_depth=status.queued + status.waiting_for_worker,
        )

    def _now(self) -> dt.datetime:
        return self._wall_clock() if self._wall_clock is not None else _utc_now()

    def _charge(self, user: str | None, run: GenerationRun) -> None:
        """Charge the user's budget with the GPU-seconds this generation kept a worker busy
        (only counted when a budget is set: no SQLite write per generation otherwise). Its
        share of the worker's idle time follows when the worker's bill closes (:meth:`_settled`).
        """
        if self._budget is not None and self._budget.limit_s > 0:
            self._budget.charge(user, run.gpu_seconds)
            if not run.cost.final:
                self._charged[run.generation_id] = run.gpu_seconds

    def _charge_rest(self, cost: GenerationCost) -> None:
        """A generation's cost became final: charge what its first charge did not cover."""
        charged = self._charged.pop(cost.generation_id, None)
        if charged is not None and self._budget is not None:
            self._budget.charge(cost.user, cost.gpu_seconds - charged)

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
            on_call=self._called,
        )

    def _station_for(self, session: aiohttp.ClientSession, key: Secret) -> Station:
        """The station of this endpoint for ``key`` (made on first use)."""
        station = self._stations.get(key)
        if station is not None:
            return station
        if self._protocol == "v1":
            station = self._v1_station(session, key)
        elif self.settings.worker_protocol == "v2":
            station = self._lease_pool(session, key)
        else:  # auto: leases, falling back to v1; one probe at a time until a lease came
            station = AutoStation(
                self._lease_pool(session, key, probing=self._protocol == "auto"),
                make_v1=lambda: self._v1_station(session, key),
                on_detected=self._detected,
            )
        self._stations[key] = station
        return station

    def _v1_station(self, session: aiohttp.ClientSession, key: Secret) -> SharedV1Worker:
        assert self._tasks is not None
        timeouts = self.settings.timeouts
        protocol = V1Protocol(
            client=self._client(session, key),
            use_async=self.settings.use_async,
            poll_interval=self.settings.poll_interval,
            hold_seconds=timeouts.generation + timeouts.release + _HOLD_MARGIN_S,
        )
        return SharedV1Worker(
            protocol,
            self._tasks.start_soon,
            self.idle,
            journal=self._journal,
            key=key,
            endpoint_id=self._endpoint_id,
            costs=self.costs,
            telemetry=self.telemetry,
        )

    def _lease_pool(
        self, session: aiohttp.ClientSession, key: Secret, *, probing: bool = False
    ) -> LeasePool:
        assert self._tasks is not None
        timeouts = self.settings.timeouts

        def swarm_for(handle: WorkerHandle, session_id: str | None) -> SwarmUIClient:
            return handle.swarm_client(
                session, session_id=session_id, request_timeout=timeouts.request
            )

        pool = LeasePool(
            V2Protocol(
                client=self._client(session, key), poll_interval=self.settings.poll_interval
            ),
            key=key,
            endpoint_id=self._endpoint_id,
            spawn=self._tasks.start_soon,
            swarm_for=swarm_for,
            idle=self.idle,
            max_workers=self.settings.max_workers,
            generation_timeout=timeouts.generation,
            release_timeout=timeouts.release,
            startup_timeout=timeouts.startup,
            journal=self._journal,
            probing=probing,
            on_confirmed=self._detected,
            costs=self.costs,
            telemetry=self.telemetry,
        )
        self._pools[key] = pool
        return pool

    def _detected(self, protocol: str) -> None:
        self._protocol = protocol
        if self._journal is not None:
            self._journal.remember_protocol(self._endpoint_id, protocol)

    async def _follow_schedule(self) -> None:
        """Keep the prewarm schedule's worker count (backend key only; users prewarm apart)."""
        key = self.settings.runpod_api_key
        if not key or self._session is None:
            log.warning("[RunPodServerless] Prewarm needs the backend's RunPodApiKey; ignored")
            return
        session = self._session
        while True:
            target = self.schedule.workers_at(self._now())
            station = self._station_for(session, key)
            pool = self._pools.get(key)
            if pool is not None and self._protocol != "v1":
                pool.set_floor(target)
            elif target and isinstance(station, SharedV1Worker) and station.held is None:
                await self.prewarm(1)
            await anyio.sleep(_SCHEDULE_TICK_S)

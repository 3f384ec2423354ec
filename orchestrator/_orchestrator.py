"""The library face: ``async with Orchestrator(settings) as orch: await orch.generate(...)``."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

import aiohttp
import anyio
import anyio.abc

from ._progress import ProgressCallback
from ._result import GenerationResult
from ._retry import RetryPolicy
from .engine import GenerationRequest, GenerationRun
from .errors import SettingsError
from .keys import KeyProvider, resolve_runpod_key
from .runpod import RunPodClient
from .secrets import Secret
from .settings import Settings
from .workers import Admission, SharedV1Worker, V1Protocol

__all__ = ["Orchestrator"]

log = logging.getLogger("swarmpod")

# A keepalive outlives the generation's deadline plus the release, with room to spare.
_HOLD_MARGIN_S = 60.0


class Orchestrator:
    """Runs SwarmUI generations on a RunPod serverless endpoint.

    >>> async def main() -> None:                                    # doctest: +SKIP
    ...     async with Orchestrator(Settings.load()) as orch:
    ...         result = await orch.generate({"prompt": "a lighthouse", "steps": 20}, images=2)
    ...         print(result.seeds, result.cold_start, result.timings.startup)

    Args:
        settings: the backend's settings (EndpointId is required here).
        keys: where users' own RunPod keys come from when the backend has none.
        session: an aiohttp session to use (the orchestrator makes and closes its own if None).
        retry: how RunPod calls are retried on 429/5xx.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        keys: KeyProvider | None = None,
        session: aiohttp.ClientSession | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        if settings.endpoint_id is None:
            raise SettingsError("EndpointId", "is required (the RunPod serverless endpoint id)")
        if settings.worker_protocol == "v2":
            raise SettingsError(
                "WorkerProtocol", "v2 (leases) is not supported yet; use auto or v1"
            )
        self.settings = settings
        self._endpoint_id: str = settings.endpoint_id
        self._keys = keys
        self._session = session
        self._own_session = session is None
        self._retry = retry or RetryPolicy()
        self.admission = Admission(settings.max_concurrent)
        self._stations: dict[Secret, SharedV1Worker] = {}
        self._tasks: anyio.abc.TaskGroup | None = None

    async def __aenter__(self) -> Self:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        self._tasks = anyio.create_task_group()
        await self._tasks.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._tasks is not None:
            # Every generation has released its worker by now; only idle holders remain.
            self._tasks.cancel_scope.cancel()
            await self._tasks.__aexit__(None, None, None)
            self._tasks = None
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    def __repr__(self) -> str:
        return (
            f"Orchestrator(endpoint_id={self._endpoint_id!r}, "
            f"base_url={self.settings.runpod_base_url!r}, in_flight={self.admission.in_flight})"
        )

    async def generate(
        self,
        params: Mapping[str, Any],
        *,
        images: int | None = None,
        user: str | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> GenerationResult:
        """Generate images with SwarmUI text-to-image ``params`` on a RunPod worker.

        Wakes a worker, waits until its SwarmUI answers (StartupTimeoutSec), generates
        (GenerationTimeoutSec), and releases the worker on every path.

        Args:
            params: T2I parameters by SwarmUI id, passed through as given (unknown ids too).
            images: how many images; default ``params["images"]`` or 1.
            user: the calling user; their own key is used when the backend has none.
            on_progress: called with each progress event.

        Raises:
            OrchestratorError: a subclass saying what failed, in which phase, and whether a
                retry may help. The worker has been released when it is raised.
        """
        if self._session is None:
            raise RuntimeError("use 'async with Orchestrator(...)' before generate()")
        passed = dict(params)
        count = images if images is not None else int(passed.pop("images", 1))
        passed.pop("images", None)
        if count < 1:
            raise ValueError(f"images must be >= 1, got {count}")
        session = self._session

        async def connect() -> SharedV1Worker:
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
        )
        return await run.run()

    def _station_for(self, session: aiohttp.ClientSession, key: Secret) -> SharedV1Worker:
        """The shared v1 worker of this endpoint for ``key`` (made on first use)."""
        station = self._stations.get(key)
        if station is None:
            assert self._tasks is not None
            client = RunPodClient(
                session,
                self._endpoint_id,
                key,
                base_url=self.settings.runpod_base_url,
                retry=self._retry,
                request_timeout=self.settings.request_timeout_sec,
            )
            timeouts = self.settings.timeouts
            protocol = V1Protocol(
                client=client,
                use_async=self.settings.use_async,
                poll_interval=self.settings.poll_interval,
                hold_seconds=timeouts.generation + timeouts.release + _HOLD_MARGIN_S,
            )
            station = SharedV1Worker(protocol, self._tasks.start_soon)
            self._stations[key] = station
        return station

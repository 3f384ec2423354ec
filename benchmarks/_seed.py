"""The seed extension re-enacted from its C# source, call for call, delay for delay.

The seed is HartsyAI/SwarmUI-Runpod-Serverless-Backend at ``30844e89`` (2025-11-02), a SwarmUI
backend type; SwarmUI is mcmonkeyprojects/SwarmUI at ``062407c7``. File:line references below
are to those commits (``Backend.cs`` = ``RunPodServerlessBackend.cs``, ``ApiClient.cs`` =
``WebAPI/RunPodApiClient.cs``).

**SwarmUI serialises the backend.** A backend takes ``MaxUsages`` generations at once, 1 unless
the backend changes it (``src/Backends/AbstractBackend.cs:49``); the seed never does. SwarmUI's
request loop hands a backend to a waiting request only while ``Usages < MaxUsages``
(``src/Backends/BackendHandler.cs:296`` ``CheckIsInUse``, ``:1013`` the ``available`` list of
``TryFind``), waiting requests are tried in the order they came (``:1165-1181``), and the
backend is held for the whole of the backend's ``Generate`` (``src/Text2Image/T2IEngine.cs:272``
takes it, ``:299`` ``using (backend)``, ``:306`` generates) and handed on the moment it is
released (``BackendHandler.cs:1461-1462``).
:class:`SeedBackend` does the same with a first-come-first-served capacity limiter of
``MaxUsages``.

**One generation** (``Backend.cs:364-456``, ``Generate``), every step awaited in turn:

1. ``WakeupAndWaitForWorkerAsync(client, 180)`` (``:380-382``, ``:521-561``):

   a. ``POST /run {"input": {"action": "wakeup", "duration": 180, "interval": 30}}``
      (``:523-525``; ``ApiClient.cs:20-33``, ``:143-170``; a non-2xx answer throws,
      ``:154-158``), then ``PollJobStatusAsync`` (``ApiClient.cs:173-198``): ``GET
      /status/{id}`` at once, then every 1000 ms (``:195``) until ``COMPLETED`` (``:186``),
      at most 300 polls; ``FAILED`` throws (``:190-194``); any other status, or any HTTP status
      (it is not checked, ``:182-185``), polls on.
   b. ``Task.Delay(2000)`` (``Backend.cs:526``).
   c. Up to ``StartupTimeoutSec * 1000 / PollIntervalMs`` times (``:527-531``): ``POST
      /runsync {"input": {"action": "ready"}}`` (``ApiClient.cs:36-57``), a NEW job each time;
      ``ready`` is read from the job's ``output``, or from the whole answer when there is none
      (``:169``: a ``/runsync`` that timed out answers ``IN_QUEUE`` with no output, so "not
      ready"); ready returns; otherwise, and on any exception (``Backend.cs:553-556``),
      ``Task.Delay(PollIntervalMs)`` (``:558``).
2. ``WaitForWorkerBackendsLoadedAsync`` (``:384``, ``:100-130``): ``POST /API/ListBackends
   {session_id, nonreal: true, full_data: true}`` on the worker's SwarmUI until no backend is
   ``loading``, every ``clamp(PollIntervalMs, 500, 5000)`` ms; errors are swallowed.
3. ``SelectModel`` only when the request names a model (``:386-422``); the benchmark's do not.
4. ``POST /API/GenerateText2Image`` with the session and the request's values (``:423-426``);
   no images is an error (``:427-431``).
5. ``finally``: ``POST /runsync {"input": {"action": "shutdown"}}`` (``:440-455``,
   ``ApiClient.cs:96-117``), errors swallowed. The worker only acknowledges it: the worker
   then idles out by the endpoint's idle timeout.

Every HTTP call has the 10-minute timeout of SwarmUI's ``NetworkBackendUtils.MakeHttpClient``
(``src/Backends/NetworkBackendUtils.cs:22-26``; ``CallSwarmUIAsync`` ignores its
``timeoutSeconds`` argument, ``ApiClient.cs:120-140``).

**Repaired, so that there is a cost to compare** (they change no RunPod call and no delay):
taken literally, the seed never returns an image. SwarmUI refuses a backend with
``CanLoadModels = false`` for text-to-image (``T2IEngine.cs:86-90``), which the seed sets in
``Init`` (``Backend.cs:75``); its request omits ``images`` for one image, which SwarmUI
requires; and it base64-decodes saved-image paths (specs: swarmui-api §8.4). The re-enactment
is chosen as if ``CanLoadModels`` were true with no model to load, sends ``images: 1`` and
``donotsave: true``, and counts the images it gets.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import anyio

from orchestrator.errors import OrchestratorError

__all__ = ["SeedBackend", "SeedError", "SeedResult", "SeedSettings"]

_HTTP_TIMEOUT_S: Final = 600.0
"""``NetworkBackendUtils.MakeHttpClient(timeoutMinutes: 10)``."""
_STATUS_POLLS: Final = 300
_STATUS_INTERVAL_S: Final = 1.0
_WAKE_DELAY_S: Final = 2.0
_COLD_DELAY_MS: Final = 1000
"""A wake-up job that waited longer than this for a worker found none warm (not the seed's
notion: the benchmark's, to count cold generations)."""


class SeedError(OrchestratorError):
    """Raised where the seed throws: a failed job, a worker never ready, no images."""


@dataclass(frozen=True)
class SeedSettings:
    """The seed backend's settings as its code defaults them (``Backend.cs:29-51``).

    Attributes:
        poll_interval_ms: ``PollIntervalMs`` (readiness poll interval).
        startup_timeout_s: ``StartupTimeoutSec`` (800 in code; its README says 120).
        keepalive_s: the ``duration`` ``Generate`` sends with its wake-up (``:380``; the
            worker ignores it).
        keepalive_interval_s: the ``interval`` sent with it (``:523``).
        max_usages: SwarmUI's ``MaxUsages`` of the backend (never changed by the seed).
    """

    poll_interval_ms: int = 2000
    startup_timeout_s: int = 800
    keepalive_s: int = 180
    keepalive_interval_s: int = 30
    max_usages: int = 1


@dataclass(frozen=True)
class SeedResult:
    """What one seed generation did.

    Attributes:
        images: images the worker returned.
        cold_start: whether its wake-up job waited over a second for a worker.
        worker_id: the worker that generated.
    """

    images: int
    cold_start: bool
    worker_id: str | None


class SeedBackend:
    """One SwarmUI with the seed's backend on one endpoint; every generation goes through it.

    Args:
        http: the HTTP session (SwarmUI's shared ``HttpClient``).
        api_base_url: the RunPod API base, e.g. ``https://api.runpod.ai/v2``.
        endpoint_id: the backend's ``EndpointId``.
        api_key: the user's RunPod key.
        settings: the backend's settings.
    """

    def __init__(
        self,
        http: aiohttp.ClientSession,
        api_base_url: str,
        endpoint_id: str,
        api_key: str,
        settings: SeedSettings | None = None,
    ) -> None:
        self._http = http
        self._endpoint_url = f"{api_base_url.rstrip('/')}/{endpoint_id}"
        self._auth = {"Authorization": f"Bearer {api_key}"}
        self.settings = settings or SeedSettings()
        self._usages = anyio.CapacityLimiter(self.settings.max_usages)

    async def generate(self, params: Mapping[str, Any]) -> SeedResult:
        """One generation as SwarmUI runs it on the seed backend: wait for the backend (held by
        at most ``MaxUsages`` generations, first come first served), then ``Generate``.

        Raises:
            SeedError: where the seed throws (``Backend.cs:435-439`` wraps everything).
        """
        async with self._usages:
            try:
                return await self._generate(params)
            except SeedError:
                raise
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                raise SeedError(f"RunPod generation failed: {exc}") from exc

    async def _generate(self, params: Mapping[str, Any]) -> SeedResult:
        worker: Mapping[str, Any] | None = None
        try:
            worker, cold = await self._wake_and_wait()
            await self._wait_backends_loaded(worker)
            images = await self._generate_on(worker, params)
            if not images:
                raise SeedError("RunPod generation failed: No images returned from generation")
            return SeedResult(len(images), cold, _text(worker.get("worker_id")))
        finally:
            if worker is not None:
                with anyio.CancelScope(shield=True):
                    await self._shutdown()

    # --- RunPod (ApiClient.cs) ------------------------------------------------------------

    async def _wake_and_wait(self) -> tuple[Mapping[str, Any], bool]:
        """``WakeupAndWaitForWorkerAsync`` (``Backend.cs:521-561``); also says whether the
        wake-up waited for a worker to start."""
        wakeup = {
            "action": "wakeup",
            "duration": self.settings.keepalive_s,
            "interval": self.settings.keepalive_interval_s,
        }
        job = await self._run_async(wakeup)
        cold = (job.get("delayTime") or 0) > _COLD_DELAY_MS
        await anyio.sleep(_WAKE_DELAY_S)
        interval_s = self.settings.poll_interval_ms / 1000
        attempts = self.settings.startup_timeout_s * 1000 // self.settings.poll_interval_ms
        for _ in range(attempts):
            try:
                ready = await self._run_sync({"action": "ready"})
                if ready.get("ready") is True:
                    return ready, cold
            except (aiohttp.ClientError, TimeoutError, ValueError):
                pass  # Backend.cs:553-556: logged, polled again
            await anyio.sleep(interval_s)
        raise SeedError(
            f"Worker did not become ready within {self.settings.startup_timeout_s} seconds"
        )

    async def _run_async(self, job_input: Mapping[str, Any]) -> Mapping[str, Any]:
        """``CallRunPodHandlerAsync(useSync: false)`` + ``PollJobStatusAsync``: the final
        status (``ApiClient.cs:143-198``; the caller reads only ``output``)."""
        answer = await self._post(f"{self._endpoint_url}/run", {"input": job_input})
        job_id = answer.get("id")
        if not job_id:
            return answer
        for _ in range(_STATUS_POLLS):
            async with self._http.get(
                f"{self._endpoint_url}/status/{job_id}",
                headers=self._auth,
                timeout=aiohttp.ClientTimeout(total=_HTTP_TIMEOUT_S),
            ) as response:
                status = _json_object(await response.text())  # the HTTP status is not checked
            if status.get("status") == "COMPLETED":
                return status
            if status.get("status") == "FAILED":
                raise SeedError(f"RunPod job failed: {status.get('error') or 'Job failed'}")
            await anyio.sleep(_STATUS_INTERVAL_S)
        raise SeedError(f"Job {job_id} did not complete within timeout")

    async def _run_sync(self, job_input: Mapping[str, Any]) -> Mapping[str, Any]:
        """``CallRunPodHandlerAsync(useSync: true)``: the job's output, or the whole answer
        when it has none (``ApiClient.cs:169``)."""
        answer = await self._post(f"{self._endpoint_url}/runsync", {"input": job_input})
        output = answer.get("output")
        return output if isinstance(output, Mapping) else answer

    async def _shutdown(self) -> None:
        """``ShutdownWorkerAsync`` (``ApiClient.cs:96-117``): errors are only logged."""
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
            await self._run_sync({"action": "shutdown"})

    async def _post(
        self, url: str, body: Mapping[str, Any], *, to: str = "RunPod", auth: bool = True
    ) -> Mapping[str, Any]:
        """A POST that throws on a non-2xx answer (``ApiClient.cs:133-137``, ``:153-160``)."""
        async with self._http.post(
            url,
            json=body,
            headers=self._auth if auth else None,
            timeout=aiohttp.ClientTimeout(total=_HTTP_TIMEOUT_S),
        ) as response:
            text = await response.text()
            if response.status // 100 != 2:
                raise SeedError(f"{to} API call failed ({response.status}): {text}")
            return _json_object(text)

    # --- the worker's SwarmUI (CallSwarmUIAsync, ApiClient.cs:120-140) ---------------------

    async def _wait_backends_loaded(self, worker: Mapping[str, Any]) -> None:
        """``WaitForWorkerBackendsLoadedAsync`` (``Backend.cs:100-130``)."""
        poll_ms = min(max(self.settings.poll_interval_ms, 500), 5000)
        attempts = max(1, self.settings.startup_timeout_s * 1000 // poll_ms)
        body = {"session_id": worker.get("session_id"), "nonreal": True, "full_data": True}
        for _ in range(attempts):
            try:
                backends = await self._swarm(worker, "/API/ListBackends", body)
                statuses = [b.get("status") for b in backends.values() if isinstance(b, dict)]
                if not any(str(status).lower() == "loading" for status in statuses):
                    return
            except (aiohttp.ClientError, TimeoutError, ValueError, SeedError):
                pass  # Backend.cs:123-126: logged, polled again
            await anyio.sleep(poll_ms / 1000)

    async def _generate_on(self, worker: Mapping[str, Any], params: Mapping[str, Any]) -> list[Any]:
        """``GenerateText2Image`` with the request's values (``Backend.cs:423-427``), repaired
        with ``images`` and ``donotsave`` (module docstring)."""
        body = {"session_id": worker.get("session_id"), **params, "images": 1, "donotsave": True}
        answer = await self._swarm(worker, "/API/GenerateText2Image", body)
        images = answer.get("images")
        return images if isinstance(images, list) else []

    async def _swarm(
        self, worker: Mapping[str, Any], path: str, body: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        base = _text(worker.get("public_url"))
        if not base:
            raise SeedError("Worker public URL is required")
        url = f"{base.rstrip('/')}/{path.lstrip('/')}"
        return await self._post(url, body, to="SwarmUI", auth=False)


def _json_object(text: str) -> Mapping[str, Any]:
    """``JObject.Parse``: a JSON object, else an error (ValueError)."""
    parsed = json.loads(text)
    if not isinstance(parsed, dict):
        raise ValueError("not a JSON object")
    return parsed


def _text(value: object) -> str | None:
    return None if value is None else str(value)

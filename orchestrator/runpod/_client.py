"""The RunPod serverless REST client: aiohttp transport, msgspec bodies, safe retries."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

import aiohttp
import anyio
import msgspec

from orchestrator._retry import RetryPolicy, parse_retry_after
from orchestrator.errors import TransportError, runpod_error_for_status
from orchestrator.secrets import Secret

from ._calls import (
    ApiCall,
    RetryNotice,
    may_reask_undecodable,
    may_retry_status,
    may_retry_transport,
)
from ._models import Health, Job, JobPolicy, PurgeResult, StreamChunk, decode_stream

__all__ = ["DEFAULT_BASE_URL", "RunPodClient"]

DEFAULT_BASE_URL: Final = "https://api.runpod.ai/v2"
_RUNSYNC_DEFAULT_WAIT_MS: Final = 90_000
_RUNSYNC_WAIT_RANGE: Final = (1000, 300_000)
_CREATES_JOB: Final = frozenset({"run", "runsync"})

_log = logging.getLogger("swarmpod.runpod")
_T = TypeVar("_T")


class _Answer(msgspec.Struct):
    status: int
    body: bytes
    retry_after: float | None


class RunPodClient:
    """Client for one RunPod serverless endpoint (queue-based API, runpod-api.md §2).

    >>> async def main(session: aiohttp.ClientSession) -> None:  # doctest: +SKIP
    ...     client = RunPodClient(session, "4m7x2k9q", Secret("rpa_..."))
    ...     job = await client.run({"action": "wakeup"})
    ...     print((await client.status(job.id)).state)

    The caller owns ``session``; the client never closes it. Errors come from
    :mod:`orchestrator.errors`: 401/403/404 and other 4xx are raised at once, 429 and 5xx are
    retried per ``retry`` (honouring ``Retry-After``, sleeping on the loop clock). ``/run`` and
    ``/runsync`` create jobs, so they are retried only when RunPod certainly did not take the
    request (429, 502/503/504, a refused connection). Connection failures and timeouts that
    outlast the retries raise :class:`~orchestrator.errors.TransportError`.

    A 2xx answer whose body does not decode is asked again per ``retry`` on every route but
    ``/run`` and ``/runsync`` (where a job may already exist) and ``/stream`` (a cursor: what
    the lost answer carried is never sent again); then it raises ``TransportError`` naming the
    route, ``retryable`` except on ``/run`` and ``/runsync``. A connection lost after a
    ``/stream`` request was sent is not retried either, for the same reason.
    Error bodies are never read into messages. ``on_call`` sees every HTTP attempt, ``on_retry``
    every retry about to happen.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        endpoint_id: str,
        api_key: Secret,
        *,
        base_url: str = DEFAULT_BASE_URL,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 (frozen value object)
        request_timeout: float = 30.0,
        on_call: Callable[[ApiCall], None] | None = None,
        on_retry: Callable[[RetryNotice], None] | None = None,
    ) -> None:
        self._session = session
        self.endpoint_id = endpoint_id
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._retry = retry
        self._request_timeout = request_timeout
        self._on_call = on_call
        self._on_retry = on_retry

    def __repr__(self) -> str:
        return f"RunPodClient(endpoint_id={self.endpoint_id!r}, base_url={self.base_url!r})"

    async def run(
        self,
        input: Mapping[str, Any],
        *,
        policy: JobPolicy | None = None,
        webhook: str | None = None,
    ) -> Job:
        """Queue a job (``POST /run``); the answer carries its id and ``IN_QUEUE``."""
        body = _job_body(input, policy=policy, webhook=webhook)
        return await self._call("POST", "run", Job, body=body)

    async def runsync(
        self,
        input: Mapping[str, Any],
        *,
        wait_ms: int | None = None,
        policy: JobPolicy | None = None,
    ) -> Job:
        """Queue a job and wait up to ``wait_ms`` (1000-300000, server default 90000) for it.

        The answer is the terminal job when it finished in time, else the job as it is now
        (IN_QUEUE or IN_PROGRESS): continue with :meth:`status`.

        Raises:
            ValueError: ``wait_ms`` is outside 1000-300000.
        """
        params: dict[str, str] = {}
        wait = _RUNSYNC_DEFAULT_WAIT_MS
        if wait_ms is not None:
            low, high = _RUNSYNC_WAIT_RANGE
            if not low <= wait_ms <= high:
                raise ValueError(f"wait_ms must be within {low}..{high}, got {wait_ms}")
            params["wait"] = str(wait_ms)
            wait = wait_ms
        body = _job_body(input, policy=policy, webhook=None)
        request_s = wait / 1000 + self._request_timeout
        return await self._call(
            "POST", "runsync", Job, body=body, params=params, request_s=request_s
        )

    async def status(self, job_id: str) -> Job:
        """The job's current state (``GET /status/{id}``)."""
        return await self._call("GET", "status", Job, job_id=job_id)

    async def stream(self, job_id: str, *, wait_ms: int | None = None) -> StreamChunk:
        """The outputs streamed since the previous call (``POST /stream/{id}``, a cursor).

        Sent as POST, as the Go SDK does (RunPod serves both): an HTTP client may silently
        resend a GET whose connection broke, and a resent cursor read cannot return what the
        lost answer carried; a POST that breaks is reported instead.

        ``wait_ms`` makes it a long-poll (``?wait=``, as the Go SDK sends it): the answer comes
        as soon as there is a new output or the job is terminal, else after ``wait_ms``.

        Raises:
            ValueError: ``wait_ms`` is outside 1000-300000.
        """
        if wait_ms is None:
            return await self._call("POST", "stream", decode_stream, job_id=job_id)
        low, high = _RUNSYNC_WAIT_RANGE
        if not low <= wait_ms <= high:
            raise ValueError(f"wait_ms must be within {low}..{high}, got {wait_ms}")
        return await self._call(
            "POST",
            "stream",
            decode_stream,
            job_id=job_id,
            params={"wait": str(wait_ms)},
            request_s=wait_ms / 1000 + self._request_timeout,
        )

    async def cancel(self, job_id: str) -> Job:
        """Cancel a queued or running job (``POST /cancel/{id}``)."""
        return await self._call("POST", "cancel", Job, job_id=job_id)

    async def health(self) -> Health:
        """Queue and worker counters of the endpoint (``GET /health``)."""
        return await self._call("GET", "health", Health)

    async def purge_queue(self) -> PurgeResult:
        """Drop every queued job; running jobs go on (``POST /purge-queue``)."""
        return await self._call("POST", "purge-queue", PurgeResult)

    async def _call(
        self,
        method: str,
        route: str,
        decode: type[_T] | Callable[[bytes], _T],
        *,
        job_id: str | None = None,
        body: bytes | None = None,
        params: Mapping[str, str] | None = None,
        request_s: float | None = None,
    ) -> _T:
        attempts = self._retry.attempts
        for attempt in range(1, attempts + 1):
            answer = await self._send_with_retries(
                method, route, job_id=job_id, body=body, params=params, request_s=request_s
            )
            try:
                if isinstance(decode, type):
                    return msgspec.json.decode(answer.body, type=decode)
                return decode(answer.body)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                _log.warning(
                    "[RunPodApiClient] /%s answered %d with an undecodable body",
                    route,
                    answer.status,
                )
                repeatable = may_reask_undecodable(route)
                if repeatable and attempt < attempts:
                    await self._back_off(route, attempt, None, "undecodable body")
                    continue
                raise TransportError(
                    f"RunPod answered /{route} with a body swarmpod cannot read "
                    f"({type(exc).__name__}); try again, and report it if it persists.",
                    retryable=route not in _CREATES_JOB,
                    status=answer.status,
                    job_id=job_id,
                ) from None
        raise AssertionError("unreachable: the decode loop always returns or raises")

    async def _send_with_retries(
        self,
        method: str,
        route: str,
        *,
        job_id: str | None,
        body: bytes | None,
        params: Mapping[str, str] | None,
        request_s: float | None,
    ) -> _Answer:
        path = f"{route}/{job_id}" if job_id is not None else route
        url = f"{self.base_url}/{self.endpoint_id}/{path}"
        headers = {"Authorization": f"Bearer {self._api_key.reveal()}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        client_timeout = aiohttp.ClientTimeout(total=request_s or self._request_timeout)
        attempts = self._retry.attempts
        for attempt in range(1, attempts + 1):
            started = anyio.current_time()
            try:
                async with self._session.request(
                    method,
                    url,
                    data=body,
                    params=params,
                    headers=headers,
                    timeout=client_timeout,
                ) as response:
                    answer = _Answer(
                        status=response.status,
                        body=await response.read(),
                        retry_after=parse_retry_after(response.headers.get("Retry-After")),
                    )
            except (aiohttp.ClientError, TimeoutError) as exc:
                nothing_sent = isinstance(
                    exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError
                )
                what = type(exc).__name__
                self._report(route, method, None, attempt, started, job_id, what)
                if attempt < attempts and may_retry_transport(route, nothing_sent=nothing_sent):
                    await self._back_off(route, attempt, None, what)
                    continue
                raise TransportError(
                    f"Could not reach RunPod for /{route} ({what}) after {attempt} attempt(s); "
                    "check the network and RunPodBaseUrl.",
                    job_id=job_id,
                ) from exc
            status = answer.status
            failed = None if 200 <= status < 300 else f"HTTP {status}"
            self._report(route, method, status, attempt, started, job_id, failed)
            if failed is None:
                return answer
            retry_after = answer.retry_after
            if (
                attempt < attempts
                and may_retry_status(route, status)
                and not self._retry.gives_up_on(retry_after)
            ):
                await self._back_off(route, attempt, retry_after, failed)
                continue
            raise runpod_error_for_status(status, route, retry_after=retry_after, job_id=job_id)
        raise AssertionError("unreachable: the retry loop always returns or raises")

    async def _back_off(
        self, route: str, attempt: int, retry_after: float | None, what: str
    ) -> None:
        delay = self._retry.delay(attempt, retry_after=retry_after)
        _log.info(
            "[RunPodApiClient] /%s failed (%s), retry %d in %.2f s", route, what, attempt, delay
        )
        if self._on_retry is not None:
            self._on_retry(RetryNotice(route, what, attempt, delay))
        await anyio.sleep(delay)

    def _report(
        self,
        route: str,
        method: str,
        status: int | None,
        attempt: int,
        started: float,
        job_id: str | None,
        error: str | None,
    ) -> None:
        duration = anyio.current_time() - started
        _log.debug(
            "[RunPodApiClient] %s /%s -> %s in %.3f s (attempt %d)",
            method,
            route,
            status,
            duration,
            attempt,
        )
        if self._on_call is not None:
            self._on_call(ApiCall(route, method, status, attempt, duration, job_id, error))


def _job_body(
    input: Mapping[str, Any],
    *,
    policy: JobPolicy | None,
    webhook: str | None,
) -> bytes:
    body: dict[str, Any] = {"input": dict(input)}
    if policy is not None:
        body["policy"] = policy
    if webhook is not None:
        body["webhook"] = webhook
    return msgspec.json.encode(body)

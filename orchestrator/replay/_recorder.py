"""Recording: an orchestrator whose every HTTP exchange is written to a cassette.

The recorder owns the aiohttp session it hands to its :class:`~orchestrator.Orchestrator`; the
session captures every exchange (``_capture.py``): the RunPod API calls, the worker's SwarmUI
calls and each message of ``GenerateText2ImageWS``. The recorder adds the ``generate()`` calls
and their outcomes, redacts secrets and writes the file.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import importlib.metadata
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp
import anyio

from .._orchestrator import Orchestrator
from .._progress import ProgressCallback, ProgressEvent
from .._result import GenerationResult
from .._retry import RetryPolicy
from ..errors import OrchestratorError
from ..keys import KeyProvider
from ..settings import Settings
from ._capture import HttpCapture, Pending
from ._cassette import (
    Cassette,
    CassetteError,
    ErrorFacts,
    Exchange,
    ExchangeError,
    GenerationCall,
    GenerationOutcome,
    ImageFacts,
)
from ._cassette_write import dump_lines
from ._jitter import RecordingRandom
from ._redact import Redactor

__all__ = ["CassetteRecorder", "outcome_of"]

log = logging.getLogger("swarmpod.replay")


class CassetteRecorder:
    """An orchestrator that records every HTTP exchange it makes into a cassette file.

    >>> async def main(settings: Settings) -> None:                      # doctest: +SKIP
    ...     async with CassetteRecorder("fox.cassette.jsonl", settings) as recorder:
    ...         result = await recorder.generate({"prompt": "a fox"}, images=2)

    Use :meth:`generate` like :meth:`Orchestrator.generate`: the calls, their start times and
    their outcomes (images' seeds and hashes, or the error's type and phase) go into the
    cassette too, so ``swarmpod replay cassette`` can judge a replay. The file is written when
    the recorder closes — after failures and cancellations as well. Secrets are redacted.

    Args:
        path: the cassette file to write (replaced if it exists).
        settings: the orchestrator's settings (EndpointId required).
        keys: users' RunPod keys, as for :class:`~orchestrator.Orchestrator`.
        retry: how RunPod calls are retried (recorded in the header for the replay).
        wall_clock: gives the ``recorded_at`` time.
        on_written: called with the path and the number of exchanges once the file is written.
        middlewares: further aiohttp client middlewares of the recording session, run after
            the recording one (e.g. :class:`~orchestrator.emulator.EmulatorProxyRouting`).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        settings: Settings,
        *,
        keys: KeyProvider | None = None,
        retry: RetryPolicy | None = None,
        wall_clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        on_written: Callable[[Path, int], None] | None = None,
        middlewares: Sequence[aiohttp.ClientMiddlewareType] = (),
    ) -> None:
        self.path = Path(path)
        self.settings = settings
        self._keys = keys
        base = retry or RetryPolicy()
        self._jitter = RecordingRandom(base.rng)
        self._retry = dataclasses.replace(base, rng=self._jitter)
        self._wall_clock = wall_clock
        self._on_written = on_written
        self._middlewares = tuple(middlewares)
        self._recorded_at = ""
        self._capture: HttpCapture | None = None
        self._calls: list[GenerationCall] = []
        self._progress_seen = 0
        self._outcomes: dict[int, GenerationOutcome] = {}
        self._session: aiohttp.ClientSession | None = None  # set while recording
        self._orch: Orchestrator | None = None

    def __repr__(self) -> str:
        return f"CassetteRecorder({str(self.path)!r}, exchanges={self.exchanges})"

    @property
    def exchanges(self) -> int:
        """HTTP exchanges recorded so far."""
        return len(self._capture.pending) if self._capture is not None else 0

    @property
    def session(self) -> aiohttp.ClientSession:
        """The recording HTTP session (calls made with it go into the cassette too)."""
        if self._session is None:
            raise RuntimeError("use 'async with CassetteRecorder(...)' first")
        return self._session

    @property
    def orchestrator(self) -> Orchestrator:
        """The recording orchestrator (calls made on it directly are recorded, not judged)."""
        if self._orch is None:
            raise RuntimeError("use 'async with CassetteRecorder(...)' first")
        return self._orch

    async def __aenter__(self) -> Self:
        self._check_writable()  # before a long run, not after it
        capture = HttpCapture()
        session = capture.session(self._middlewares)
        try:
            orch = Orchestrator(self.settings, keys=self._keys, session=session, retry=self._retry)
            await orch.__aenter__()
        except BaseException:
            await session.close()
            self._partial().unlink(missing_ok=True)
            raise
        self._session, self._orch = session, orch
        capture.start = anyio.current_time()
        self._capture = capture
        self._recorded_at = self._wall_clock().isoformat(timespec="seconds")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._orch is not None:
                await self._orch.__aexit__(exc_type, exc, tb)
        finally:
            self._orch = None
            if self._session is not None:
                await self._session.close()
                self._session = None
            if self._capture is not None:
                self._write(self._capture)

    async def generate(
        self,
        params: Mapping[str, Any],
        *,
        images: int | None = None,
        user: str | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> GenerationResult:
        """:meth:`Orchestrator.generate`, with the call and its outcome recorded."""
        orch = self.orchestrator
        passed = dict(params)
        count = images if images is not None else int(passed.pop("images", 1))
        passed.pop("images", None)
        index = len(self._calls)
        start = self._capture.start if self._capture is not None else anyio.current_time()
        at = anyio.current_time() - start
        self._calls.append(
            GenerationCall(index, at, _plain(passed), count, user, self._progress_seen)
        )

        def counted(event: ProgressEvent) -> None:
            self._progress_seen += 1
            if on_progress is not None:
                on_progress(event)

        try:
            result = await orch.generate(passed, images=count, user=user, on_progress=counted)
        except OrchestratorError as exc:
            state = exc.path[-1] if exc.path else "Failed"
            self._outcomes[index] = GenerationOutcome(
                index, state, exc.path, None, (), ErrorFacts.of(exc)
            )
            raise
        except BaseException:  # the caller gave up: the replay gives up at the same moment
            gave_up = anyio.current_time() - start - at
            self._calls[index] = dataclasses.replace(self._calls[index], cancel_after=gave_up)
            self._outcomes[index] = GenerationOutcome(index, "Cancelled")
            raise
        self._outcomes[index] = outcome_of(index, result)
        return result

    # --- writing ----------------------------------------------------------------------------

    def _partial(self) -> Path:
        """Where the file is written before it replaces ``path`` in one step."""
        return self.path.with_name(self.path.name + ".partial")

    def _check_writable(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._partial().touch()
        except OSError as exc:
            raise CassetteError(self.path, None, f"cannot write: {exc.strerror}") from None

    def _write(self, capture: HttpCapture) -> None:
        duration = anyio.current_time() - capture.start
        redactor = Redactor()
        if self.settings.runpod_api_key:
            redactor.learn(self.settings.runpod_api_key.reveal())
        for pending in capture.pending:
            redactor.learn_from_headers(pending.request_headers)
            redactor.learn_from_url(pending.url)
            for text in _texts(pending):
                redactor.learn_from_json(text)
        cassette = Cassette(
            source=str(self.path),
            swarmpod_version=_version(),
            recorded_at=self._recorded_at,
            settings=_settings_json(self.settings, redactor),
            retry={
                "attempts": self._retry.attempts,
                "base_delay": self._retry.base_delay,
                "max_delay": self._retry.max_delay,
                "max_retry_after": self._retry.max_retry_after,
            },
            generations=tuple(
                dataclasses.replace(call, params=json.loads(redactor.body(json.dumps(call.params))))
                for call in self._calls
            ),
            exchanges=tuple(_redacted(pending, redactor, duration) for pending in capture.pending),
            outcomes=tuple(
                self._outcomes.get(call.index, GenerationOutcome(call.index, "Cancelled"))
                for call in self._calls
            ),
            duration=duration,
            clock_phase=capture.start % 1.0,
            jitter=tuple(self._jitter.drawn),
        )
        text = "".join(f"{line}\n" for line in dump_lines(cassette))
        partial = self._partial()
        try:
            partial.write_text(text, encoding="utf-8")
            partial.replace(self.path)
        except OSError as exc:
            raise CassetteError(self.path, None, f"cannot write: {exc.strerror}") from None
        log.info("recorded %d exchange(s) into %s", len(capture.pending), self.path)
        if self._on_written is not None:
            self._on_written(self.path, len(capture.pending))


def outcome_of(index: int, result: GenerationResult) -> GenerationOutcome:
    """The facts of a successful generation that a replay must reproduce."""
    return GenerationOutcome(
        index=index,
        state=result.path[-1] if result.path else "Done",
        path=result.path,
        cold_start=result.cold_start,
        images=tuple(
            ImageFacts(image.seed, hashlib.sha256(image.data).hexdigest())
            for image in result.images
        ),
    )


def _plain(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` as JSON values (what the cassette can hold and the replay sends again)."""
    loaded: dict[str, Any] = json.loads(json.dumps(dict(params), default=str))
    return loaded


def _texts(pending: Pending) -> list[str]:
    texts = [
        raw.decode("utf-8", errors="replace")
        for raw in (pending.request_body, pending.body)
        if raw is not None
    ]
    texts += [m.data for m in pending.messages if isinstance(m.data, str)]
    return texts


def _scrub(raw: bytes | None, redactor: Redactor) -> bytes | None:
    if raw is None:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw  # binary bodies (images) are kept as they are
    return redactor.body(text).encode("utf-8")


def _redacted(pending: Pending, redactor: Redactor, duration: float) -> Exchange:
    error = pending.error
    if pending.dt is None:  # still open when the recording ended
        error = error or ExchangeError("cancelled", "Unfinished")
    return Exchange(
        seq=pending.seq,
        kind=pending.kind,
        t=pending.t,
        dt=pending.dt if pending.dt is not None else max(0.0, duration - pending.t),
        method=pending.method,
        url=redactor.url(pending.url),
        request_headers=redactor.headers(pending.request_headers),
        request_body=_scrub(pending.request_body, redactor),
        status=None if error is not None else pending.status,
        headers=redactor.headers(pending.headers),
        body=_scrub(pending.body, redactor),
        error=error,
        messages=tuple(
            dataclasses.replace(m, data=redactor.body(m.data)) if isinstance(m.data, str) else m
            for m in pending.messages
        ),
    )


def _settings_json(settings: Settings, redactor: Redactor) -> dict[str, Any]:
    """The settings a cassette header records: every field but the API key and the state
    file (a local path; a replay keeps its state in memory), URL redacted."""
    values: dict[str, Any] = {
        item.name: getattr(settings, item.name)
        for item in dataclasses.fields(settings)
        if item.name not in ("runpod_api_key", "state_file")
    }
    values["runpod_base_url"] = redactor.url(settings.runpod_base_url)
    return values


def _version() -> str:
    try:
        return importlib.metadata.version("swarmpod")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"

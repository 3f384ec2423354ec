"""The SwarmUI API client: sessions, short API calls, and HTTP/WS generation.

Built to specs/swarmui-api.md: the request pipeline and error envelopes (§1, §1.1), sessions
(§2), the generate routes (§3.1, §3.2), InterruptAll (§3.3), status (§3.4) and the model and
backend routes (§5).
"""

from __future__ import annotations

import json
import logging
import mimetypes
import random
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final, Literal

import aiohttp
import anyio
from yarl import URL

from orchestrator.errors import (
    GenerationFailedError,
    ImageDecodeError,
    NoImagesError,
    OrchestratorError,
    SwarmUIError,
    SwarmUISessionError,
    TransportError,
)
from orchestrator.secrets import Secret

from ._images import decode_data_url, decode_image, parse_metadata
from ._models import (
    BackendInfo,
    GeneratedImage,
    GenerationEvent,
    ImageReady,
    ModelListing,
    Progress,
    RequestSent,
    SessionInfo,
    StatusUpdate,
)
from ._params import clean_param_id, serialize_params

__all__ = ["SwarmUIClient"]

logger = logging.getLogger("swarmpod.swarmui")

_INVALID_SESSION: Final = "invalid_session_id"
_MAX_SEED: Final = 2**31 - 2
_CLEANUP_TIMEOUT_S: Final = 5.0
_WS_MAX_MESSAGE: Final = 256 * 1024 * 1024

EventCallback = Callable[[GenerationEvent], None]


def _describe(exc: BaseException) -> str:
    """What went wrong with a connection, in words that name no host (aiohttp's own texts
    carry the URL)."""
    if isinstance(exc, TimeoutError):
        return f"{type(exc).__name__}, timed out"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"{type(exc).__name__}, could not connect"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return f"{type(exc).__name__}, the worker closed the connection"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return f"{type(exc).__name__}, the answer was cut short"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"{type(exc).__name__}, HTTP {exc.status}"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}, {exc.strerror}"
    return type(exc).__name__


class _SessionExpiredError(Exception):
    """Internal: a WS generation was refused with ``invalid_session_id``."""


def _as_int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


class _Request:
    """The body of one generation plus what the client knows about its images' seeds."""

    def __init__(self, body: dict[str, Any], seed: int | None, increment: bool) -> None:
        self.body = body
        self.seed = seed
        self.increment = increment

    def seed_of(self, batch_index: int) -> int | None:
        if self.seed is None:
            return None
        return self.seed + batch_index if self.increment else self.seed


class SwarmUIClient:
    """A client for one SwarmUI server (normally the SwarmUI of one RunPod worker).

    >>> async def example(http: aiohttp.ClientSession) -> None:  # doctest: +SKIP
    ...     swarm = SwarmUIClient(http, "https://abc-7801.proxy.runpod.net",
    ...                           authorization=Secret("Bearer xyz"), worker_id="abc")
    ...     images = await swarm.generate({"prompt": "a cat", "model": "sd_xl_base_1.0",
    ...                                    "width": 1024, "height": 1024}, images=2)

    Args:
        session: the aiohttp session to send requests with (the transport seam).
        base_url: the server's root, e.g. ``http://127.0.0.1:7801`` or a URL with a path
            prefix such as ``http://h:p/w/abc``; routes are appended as ``/API/<Route>``.
        authorization: the exact ``Authorization`` header value for every request and the
            WS upgrade (``Secret("Bearer <token>")`` for a v2 worker); never logged.
        session_id: a session handed out beforehand (a v1 worker's); None gets one on first use.
        request_timeout: total timeout in seconds of the short API calls. Generations have
            no total timeout (the caller bounds them); this only bounds their connect.
        worker_id: the RunPod worker behind the URL, copied into every error.
        rng: where unset seeds are drawn from (default: ``random.SystemRandom``).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        authorization: Secret | None = None,
        session_id: str | None = None,
        request_timeout: float = 30.0,
        worker_id: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._http = session
        self._base = URL(base_url.rstrip("/"))
        self._authorization = authorization
        self._session_id = session_id
        self._worker_id = worker_id
        self._rng = rng or random.SystemRandom()
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._generate_timeout = aiohttp.ClientTimeout(total=None, sock_connect=request_timeout)
        self._session_lock = anyio.Lock()
        self._live_generations = 0

    def __repr__(self) -> str:
        return f"SwarmUIClient({str(self._base)!r}, worker_id={self._worker_id!r})"

    @property
    def base_url(self) -> str:
        """The server root this client talks to."""
        return str(self._base)

    @property
    def session_id(self) -> str | None:
        """The current SwarmUI session id (None before the first call)."""
        return self._session_id

    # -- plumbing -------------------------------------------------------------------------

    @contextmanager
    def _facts(self) -> Iterator[None]:
        try:
            yield
        except OrchestratorError as exc:
            known = exc.in_context(worker_id=self._worker_id)
            if known is exc:
                raise
            raise known from exc

    def _headers(self) -> dict[str, str]:
        if self._authorization is None:
            return {}
        return {"Authorization": self._authorization.reveal()}

    def _api_url(self, route: str) -> URL:
        return self._base / "API" / route

    def _ws_url(self, route: str) -> URL:
        scheme = "ws" if self._base.scheme == "http" else "wss"
        return self._api_url(route).with_scheme(scheme)

    def _view_url(self, path: str) -> URL:
        quoted = urllib.parse.quote(path.lstrip("/"), safe="/")
        return URL(f"{self._base}/{quoted}", encoded=True)

    def _transport_error(self, what: str, exc: BaseException) -> TransportError:
        """A failed connection: the URL and aiohttp's own text go to the log only (the
        message may reach an API client, who must not learn a worker's URL)."""
        logger.warning("SwarmUI at %s %s: %s", self._base, what, exc or type(exc).__name__)
        return TransportError(f"The worker's SwarmUI {what}: {_describe(exc)}.")

    def _unauthorized(self, what: str) -> SwarmUIError:
        logger.warning("SwarmUI at %s refused the Authorization header on %s", self._base, what)
        return SwarmUIError(
            f"The worker's SwarmUI refused the Authorization header on {what} (401 "
            "Unauthorized): the worker token is wrong or missing, or the lease it was issued "
            "for has ended (a v2 worker revokes it then; swarmpod retires that worker, so the "
            "next generation gets another). If every worker refuses, check the token the worker "
            "handed out (v2 workers expect 'Bearer <token>').",
            route=what,
            status=401,
            retryable=False,
        )

    async def _post_json(
        self, route: str, payload: Mapping[str, Any], *, client_timeout: aiohttp.ClientTimeout
    ) -> tuple[int, dict[str, Any]]:
        """POST a JSON body to ``/API/<route>``; return the status and the parsed JSON object."""
        try:
            async with self._http.post(
                self._api_url(route),
                json=dict(payload),
                headers=self._headers(),
                timeout=client_timeout,
            ) as response:
                status = response.status
                raw = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._transport_error(f"did not answer /API/{route}", exc) from exc
        logger.debug("POST /API/%s -> %s (%d bytes)", route, status, len(raw))
        text = raw.decode("utf-8", errors="replace")
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        if isinstance(body, dict):
            return status, body
        if status == 401 and text.strip() == "Unauthorized":
            raise self._unauthorized(f"/API/{route}")
        raise SwarmUIError(
            f"The worker's SwarmUI answered /API/{route} with HTTP {status} and a body that "
            f"is not a JSON object ({len(raw)} bytes).",
            route=route,
            status=status,
            retryable=status >= 500 or (body is None and status == 200),
        )

    async def _call(
        self,
        route: str,
        payload: Mapping[str, Any],
        *,
        client_timeout: aiohttp.ClientTimeout,
        failure: type[SwarmUIError] = SwarmUIError,
    ) -> dict[str, Any]:
        """Call a session-checked route, renewing an invalid session once (§1.1)."""
        renewed = False
        while True:
            session_id = await self._current_session()
            status, body = await self._post_json(
                route, {**payload, "session_id": session_id}, client_timeout=client_timeout
            )
            error_id = body.get("error_id")
            if error_id == _INVALID_SESSION:
                if renewed:
                    raise SwarmUISessionError(
                        "The worker's SwarmUI still refused the session after renewing it "
                        f"(/API/{route}): {body.get('error')}",
                        route=route,
                        error_id=_INVALID_SESSION,
                        status=status,
                    )
                logger.info("SwarmUI session expired on /API/%s; renewing it once", route)
                await self._renew_session(session_id)
                renewed = True
                continue
            if "error" in body:
                raise failure(
                    str(body["error"]),
                    route=route,
                    error_id=None if error_id is None else str(error_id),
                    status=status,
                )
            return body

    async def _current_session(self) -> str:
        if self._session_id is None:
            async with self._session_lock:
                if self._session_id is None:
                    await self.get_new_session()
        assert self._session_id is not None
        return self._session_id

    async def _renew_session(self, stale: str) -> None:
        async with self._session_lock:
            if self._session_id in (stale, None):
                await self.get_new_session()

    # -- short API calls --------------------------------------------------------------------

    async def get_new_session(self) -> SessionInfo:
        """Get a new session (``POST /API/GetNewSession {}``, §2.1) and use it from now on.

        Raises:
            SwarmUIError: SwarmUI refused (e.g. ``Invalid or unauthorized.`` with accounts on).
            TransportError: the server could not be reached.
        """
        with self._facts():
            status, body = await self._post_json("GetNewSession", {}, client_timeout=self._timeout)
            if "error" in body or "session_id" not in body:
                raise SwarmUIError(
                    str(body.get("error", "GetNewSession answered without a session_id")),
                    route="GetNewSession",
                    error_id=body.get("error_id"),
                    status=status,
                )
            info = SessionInfo.from_json(body)
            self._session_id = info.session_id
            logger.debug("new SwarmUI session on %s (server %s)", self._base, info.server_id)
            return info

    async def call(self, route: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """POST ``payload`` plus ``session_id`` to ``/API/<route>``; return the JSON answer.

        The body is parsed whatever the HTTP status (§1.1). ``invalid_session_id`` renews the
        session and retries once.

        Raises:
            SwarmUISessionError: the session was still invalid after renewing it.
            SwarmUIError: SwarmUI answered with ``error`` (its text is the message), refused the
                Authorization header (401), or sent a body that is not JSON.
            TransportError: the connection failed or timed out (retryable).
        """
        with self._facts():
            return await self._call(route, payload, client_timeout=self._timeout)

    async def list_models(
        self,
        *,
        path: str = "",
        depth: int = 1,
        subtype: str = "Stable-Diffusion",
        allow_remote: bool = False,
        sort_by: str = "Name",
        sort_reverse: bool = False,
        data_images: bool = False,
    ) -> ModelListing:
        """List models and folders below ``path`` (``ListModels``, §5.1)."""
        body = await self.call(
            "ListModels",
            {
                "path": path,
                "depth": depth,
                "subtype": subtype,
                "allowRemote": allow_remote,
                "sortBy": sort_by,
                "sortReverse": sort_reverse,
                "dataImages": data_images,
            },
        )
        return ModelListing.from_json(body)

    async def list_backends(
        self, *, nonreal: bool = True, full_data: bool = True
    ) -> dict[str, BackendInfo]:
        """The backends by id string (``ListBackends``, §5.3); each ``.raw`` keeps its entry."""
        body = await self.call("ListBackends", {"nonreal": nonreal, "full_data": full_data})
        return {
            key: BackendInfo.from_json(key, entry)
            for key, entry in body.items()
            if isinstance(entry, dict)
        }

    async def select_model(self, model: str, *, backend_id: int | str | None = None) -> None:
        """Load ``model`` now (``SelectModel``, §5.2): an exact name, with or without extension.

        Raises:
            SwarmUIError: SwarmUI did not answer ``success: true`` (``Model not found.``, ...).
        """
        payload: dict[str, Any] = {"model": model}
        if backend_id is not None:
            payload["backendId"] = backend_id
        body = await self.call("SelectModel", payload)
        if body.get("success") is not True:
            with self._facts():
                raise SwarmUIError(
                    f"SwarmUI did not confirm loading model {model!r}: {body!r}",
                    route="SelectModel",
                )

    async def interrupt_all(self, *, other_sessions: bool = False) -> None:
        """Interrupt this session's queued and running generations (``InterruptAll``, §3.3)."""
        await self.call("InterruptAll", {"other_sessions": other_sessions})

    async def get_current_status(self) -> dict[str, Any]:
        """This session's counters and the backends' summary (``GetCurrentStatus``, §3.4)."""
        return await self.call("GetCurrentStatus", {})

    # -- generation ---------------------------------------------------------------------------

    def _build_request(self, params: Mapping[str, Any], images: int) -> _Request:
        body = serialize_params(params)
        seed_keys = [key for key in body if clean_param_id(key) == "seed"]
        given = body[seed_keys[-1]] if seed_keys else -1
        for key in seed_keys + [key for key in body if clean_param_id(key) == "donotsave"]:
            del body[key]
        seed: int | None
        try:
            seed = int(given) if not isinstance(given, bool) else None
        except (TypeError, ValueError):
            seed = None
        if seed == -1:
            seed = self._rng.randint(0, _MAX_SEED)
        body["seed"] = given if seed is None else seed
        body["images"] = images
        body["donotsave"] = True
        increment = not any(
            _truthy(value)
            for key, value in body.items()
            if clean_param_id(key) == "noseedincrement"
        )
        return _Request(body, seed, increment)

    async def generate(
        self,
        params: Mapping[str, Any],
        *,
        images: int = 1,
        transport: Literal["ws", "http"] = "ws",
        on_event: EventCallback | None = None,
        expected_size: tuple[int, int] | None = None,
    ) -> list[GeneratedImage]:
        """Generate ``images`` images from T2I ``params``; return them ordered by batch index.

        The body is ``serialize_params(params)`` plus ``images``, ``donotsave: true`` and a
        concrete seed: a missing or ``-1`` seed is locked client-side so that every image has
        a known seed (image ``i`` gets ``seed + i``, or ``seed`` with ``noseedincrement``; a
        seed in SwarmUI's metadata wins). ``transport="ws"`` streams progress to ``on_event``
        (§3.2); ``"http"`` makes one blocking call (§3.1). There is no total timeout: bound
        the call with an anyio deadline. A cancelled WS generation closes its socket and, when
        it is the client's only generation, interrupts the session's work on the server.

        Raises:
            GenerationFailedError: SwarmUI reported a failure (the message is its text).
            NoImagesError: the generation ended without any image.
            ImageDecodeError: an image is invalid or not ``expected_size`` (width, height).
            SwarmUISessionError: the session stayed invalid after one renewal.
            SwarmUIError: any other refusal (401 Authorization, unexpected answer).
            TransportError: the connection failed or dropped (retryable).
        """
        if images < 1:
            raise ValueError("images must be >= 1")
        request = self._build_request(params, images)
        with self._facts():
            self._live_generations += 1
            try:
                if transport == "ws":
                    found = await self._generate_ws(request, on_event, expected_size)
                else:
                    if on_event is not None:
                        on_event(RequestSent("http"))
                    found = await self._generate_http(request, expected_size)
            except anyio.get_cancelled_exc_class():
                await self._interrupt_after_cancel()
                raise
            finally:
                self._live_generations -= 1
            if not found:
                raise NoImagesError(route="GenerateText2Image")
            return [found[index] for index in sorted(found)]

    async def _interrupt_after_cancel(self) -> None:
        if self._live_generations != 1 or self._session_id is None:
            return
        with anyio.CancelScope(shield=True), anyio.move_on_after(_CLEANUP_TIMEOUT_S):
            try:
                await self.interrupt_all()
            except OrchestratorError as exc:
                logger.debug("InterruptAll after a cancelled generation failed: %r", exc)

    async def _fetch_view(self, path: str) -> tuple[str, bytes]:
        """GET an output path such as ``View/local/raw/...png`` (a worker that saved it)."""
        url = self._view_url(path)
        try:
            async with self._http.get(
                url, headers=self._headers(), timeout=self._generate_timeout
            ) as response:
                status = response.status
                data = await response.read()
                mime = response.content_type
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._transport_error(f"did not send the image {path!r}", exc) from exc
        if status == 401:
            raise self._unauthorized("/View")
        if status != 200:
            raise SwarmUIError(
                f"SwarmUI answered HTTP {status} when downloading image {path!r}.",
                route="View",
                status=status,
            )
        if mime.startswith("text/") or mime == "application/json":  # a page, not a file
            raise ImageDecodeError(
                f"SwarmUI answered the download of image {path!r} with {mime} "
                f"({len(data)} bytes), not an image."
            )
        if not mime.startswith("image/"):
            mime = mimetypes.guess_type(path)[0] or "image/png"
        return mime, data

    async def _load_image(
        self,
        entry: str,
        *,
        request: _Request,
        batch_index: int,
        metadata: dict[str, Any] | None,
        expected_size: tuple[int, int] | None,
    ) -> GeneratedImage:
        if entry.startswith("data:"):
            mime, data = decode_data_url(entry)
        else:
            mime, data = await self._fetch_view(entry)
        return decode_image(
            data,
            mime,
            batch_index=batch_index,
            seed=request.seed_of(batch_index),
            metadata=metadata,
            expected_size=expected_size,
        )

    async def _generate_http(
        self, request: _Request, expected_size: tuple[int, int] | None
    ) -> dict[int, GeneratedImage]:
        body = await self._call(
            "GenerateText2Image",
            request.body,
            client_timeout=self._generate_timeout,
            failure=GenerationFailedError,
        )
        entries = body.get("images")
        if not isinstance(entries, list):
            raise SwarmUIError(
                f"SwarmUI's GenerateText2Image answer has no 'images' list: {sorted(body)}",
                route="GenerateText2Image",
            )
        found: dict[int, GeneratedImage] = {}
        for index, entry in enumerate(entries):
            found[index] = await self._load_image(
                str(entry),
                request=request,
                batch_index=index,
                metadata=None,
                expected_size=expected_size,
            )
        return found

    async def _generate_ws(
        self,
        request: _Request,
        on_event: EventCallback | None,
        expected_size: tuple[int, int] | None,
    ) -> dict[int, GeneratedImage]:
        session_id = await self._current_session()
        try:
            return await self._stream_ws(request, session_id, on_event, expected_size)
        except _SessionExpiredError:
            logger.info("SwarmUI session expired at generation start; renewing, redoing once")
        await self._renew_session(session_id)
        session_id = await self._current_session()
        try:
            return await self._stream_ws(request, session_id, on_event, expected_size)
        except _SessionExpiredError:
            raise SwarmUISessionError(
                "The worker's SwarmUI still refused the session after renewing it "
                "(GenerateText2ImageWS).",
                route="GenerateText2ImageWS",
                error_id=_INVALID_SESSION,
            ) from None

    async def _connect_ws(self) -> aiohttp.ClientWebSocketResponse:
        try:
            return await self._http.ws_connect(
                self._ws_url("GenerateText2ImageWS"),
                headers=self._headers(),
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=_CLEANUP_TIMEOUT_S),
                max_msg_size=_WS_MAX_MESSAGE,
            )
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status == 401:
                raise self._unauthorized("the WebSocket upgrade") from exc
            logger.warning("SwarmUI at %s refused the WebSocket upgrade: %s", self._base, exc)
            raise SwarmUIError(
                f"The worker's SwarmUI refused the WebSocket upgrade (HTTP {exc.status}).",
                route="GenerateText2ImageWS",
                status=exc.status,
                retryable=exc.status >= 500,
            ) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._transport_error("did not open a WebSocket", exc) from exc

    async def _stream_ws(
        self,
        request: _Request,
        session_id: str,
        on_event: EventCallback | None,
        expected_size: tuple[int, int] | None,
    ) -> dict[int, GeneratedImage]:
        ws = await self._connect_ws()
        try:
            await ws.send_json({**request.body, "session_id": session_id})
            if on_event is not None:
                on_event(RequestSent("ws"))
            return await self._read_ws(ws, request, on_event, expected_size)
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise self._transport_error("broke the WebSocket", exc) from exc
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(_CLEANUP_TIMEOUT_S):
                await ws.close()

    async def _read_ws(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        request: _Request,
        on_event: EventCallback | None,
        expected_size: tuple[int, int] | None,
    ) -> dict[int, GeneratedImage]:
        emit = on_event or (lambda event: None)
        found: dict[int, GeneratedImage] = {}
        finished = False
        async for message in ws:
            if message.type is aiohttp.WSMsgType.ERROR:
                break
            if message.type is not aiohttp.WSMsgType.TEXT:
                continue
            try:
                data = json.loads(message.data)
            except ValueError:
                logger.warning("SwarmUI sent a WS message that is not JSON; ignored")
                continue
            if not isinstance(data, dict):
                continue
            if "error" in data:
                if data.get("error_id") == _INVALID_SESSION:
                    raise _SessionExpiredError
                raise GenerationFailedError(
                    str(data["error"]),
                    route="GenerateText2ImageWS",
                    error_id=data.get("error_id"),
                )
            if isinstance(data.get("gen_progress"), dict):
                emit(self._progress(data["gen_progress"]))
            elif "status" in data or "backend_status" in data:
                emit(StatusUpdate.from_json(data))
            elif isinstance(data.get("image"), str):
                batch_index = _as_int(data.get("batch_index"), -1)
                if batch_index < 0:
                    continue
                metadata = data.get("metadata")
                found[batch_index] = await self._load_image(
                    data["image"],
                    request=request,
                    batch_index=batch_index,
                    metadata=parse_metadata(metadata if isinstance(metadata, str) else None),
                    expected_size=expected_size,
                )
                emit(ImageReady(batch_index))
            elif isinstance(data.get("discard_indices"), list):
                for index in data["discard_indices"]:
                    found.pop(_as_int(index, -1), None)
            elif data.get("socket_intention") == "close":
                finished = True
                break
        if not finished and ws.close_code != aiohttp.WSCloseCode.OK:
            logger.warning(
                "the WebSocket to SwarmUI at %s closed mid-generation (%s)",
                self._base,
                ws.close_code,
            )
            raise TransportError(
                "The WebSocket to the worker's SwarmUI closed before the generation ended "
                f"(close code {ws.close_code}); the worker may have died."
            )
        return found

    @staticmethod
    def _progress(progress: dict[str, Any]) -> Progress:
        preview: bytes | None = None
        url = progress.get("preview")
        if isinstance(url, str) and url.startswith("data:"):
            try:
                preview = decode_data_url(url)[1]
            except SwarmUIError:
                preview = None
        return Progress(
            batch_index=_as_int(progress.get("batch_index")),
            overall=_as_float(progress.get("overall_percent")),
            current=_as_float(progress.get("current_percent")),
            preview=preview,
        )

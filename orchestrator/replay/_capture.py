"""Capturing HTTP: a client middleware and a WebSocket class that note every exchange.

:class:`HttpCapture` makes an aiohttp session whose middleware sees each HTTP attempt (aiohttp's
own reconnect retries included) and whose WebSocket class sees each message in both directions.
Nothing in the engine or the clients changes: they are handed the session.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import aiohttp
import anyio
from aiohttp.client_middlewares import ClientHandlerType

from ._cassette import ExchangeError, WsMessage

__all__ = ["HttpCapture", "Pending", "RecordingWebSocket", "error_of", "kept_headers"]

_DROPPED_HEADERS: Final = frozenset(
    {
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "date",
        "server",
        "content-encoding",
        "host",
        "accept-encoding",
        "user-agent",
        "upgrade",
        "sec-websocket-key",
        "sec-websocket-accept",
        "sec-websocket-version",
    }
)


@dataclass
class Pending:
    """An exchange being captured (mutable until the recording is written)."""

    seq: int
    t: float
    method: str
    url: str
    request_headers: dict[str, str]
    request_body: bytes | None
    kind: Literal["http", "ws"] = "http"
    dt: float | None = None
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    error: ExchangeError | None = None
    messages: list[WsMessage] = field(default_factory=list)
    closed: bool = False


@dataclass
class _Tape:
    """Where a recording WebSocket writes its messages."""

    pending: Pending
    since: Callable[[], float]

    def note(
        self,
        sender: Literal["client", "server"],
        kind: str,
        data: str | bytes | None = None,
        code: int | None = None,
    ) -> None:
        if self.pending.closed:
            return
        if kind in ("close", "closed", "error"):
            self.pending.closed = True
        self.pending.messages.append(WsMessage(self.since(), sender, kind, data, code))


_TAPES: weakref.WeakKeyDictionary[aiohttp.ClientResponse, _Tape] = weakref.WeakKeyDictionary()


class RecordingWebSocket(aiohttp.ClientWebSocketResponse):
    """A client WebSocket that writes every message it sends or receives to a cassette.

    Pass it as ``ws_response_class`` of a session whose middleware is a recorder's; on any
    other session it behaves exactly like :class:`aiohttp.ClientWebSocketResponse`.
    """

    _auto_closing = False

    def _tape(self) -> _Tape | None:
        return _TAPES.get(self._response)

    async def receive(self, timeout: float | None = None) -> Any:  # noqa: ASYNC109 (aiohttp's)
        """Receive a message (see aiohttp) and record it."""
        self._auto_closing = True
        try:
            message = await super().receive(timeout)
        finally:
            self._auto_closing = False
        tape = self._tape()
        if tape is not None:
            kind = message.type
            if kind is aiohttp.WSMsgType.TEXT:
                tape.note("server", "text", str(message.data))
            elif kind is aiohttp.WSMsgType.BINARY:
                tape.note("server", "binary", bytes(message.data))
            elif kind is aiohttp.WSMsgType.CLOSE:
                tape.note("server", "close", code=int(message.data))
            elif kind in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                tape.note("server", "closed")
            elif kind is aiohttp.WSMsgType.ERROR:
                tape.note("server", "error")
        return message

    async def send_str(self, data: str, compress: int | None = None) -> None:
        """Send a text message (see aiohttp) and record it."""
        tape = self._tape()
        if tape is not None:
            tape.note("client", "text", data)
        await super().send_str(data, compress)

    async def send_bytes(self, data: bytes, compress: int | None = None) -> None:
        """Send a binary message (see aiohttp) and record it."""
        tape = self._tape()
        if tape is not None:
            tape.note("client", "binary", bytes(data))
        await super().send_bytes(data, compress)

    async def close(self, *, code: int = aiohttp.WSCloseCode.OK, message: bytes = b"") -> bool:
        """Close (see aiohttp); a close swarmpod starts is recorded, an automatic reply not."""
        tape = self._tape()
        if tape is not None and not self.closed and not self._auto_closing:
            tape.note("client", "close", code=code)
        return await super().close(code=code, message=message)


class HttpCapture:
    """Notes every HTTP exchange of the sessions it makes, with loop times from ``start``.

    Attributes:
        start: the loop time exchange times are measured from.
        pending: the exchanges, in the order they started.
    """

    def __init__(self) -> None:
        self.start = anyio.current_time()
        self.pending: list[Pending] = []

    def session(
        self, middlewares: Sequence[aiohttp.ClientMiddlewareType] = ()
    ) -> aiohttp.ClientSession:
        """A new capturing session (no total timeout: the callers bound their calls);
        ``middlewares`` run after the capturing one (it records the URLs asked for)."""
        return aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None),
            middlewares=(self.middleware, *middlewares),
            ws_response_class=RecordingWebSocket,
        )

    def _since_start(self) -> float:
        return anyio.current_time() - self.start

    async def middleware(
        self, request: aiohttp.ClientRequest, handler: ClientHandlerType
    ) -> aiohttp.ClientResponse:
        """The client middleware: note the request, its answer (read whole) or its failure."""
        started = anyio.current_time()
        body: bytes | None = None
        if isinstance(request.body, aiohttp.payload.BytesPayload):
            body = await request.body.as_bytes()
        upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
        url = request.url.with_scheme(_ws_scheme(request.url.scheme)) if upgrade else request.url
        pending = Pending(
            seq=len(self.pending),
            t=started - self.start,
            method=request.method,
            url=str(url),
            request_headers=kept_headers(request.headers),
            request_body=body or None,
            kind="ws" if upgrade else "http",
        )
        self.pending.append(pending)
        try:
            response = await handler(request)
            pending.status = response.status
            pending.headers = kept_headers(response.headers)
            if response.status == 101:
                _TAPES[response] = _Tape(pending, self._since_start)
            else:
                pending.body = await response.read()
        except BaseException as exc:
            pending.status = None
            pending.error = error_of(exc)
            raise
        finally:
            pending.dt = anyio.current_time() - started
        return response


def error_of(exc: BaseException) -> ExchangeError:
    """How an HTTP attempt failed, from the exception aiohttp raised."""
    kind: str
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
        kind = "connect"
    elif isinstance(exc, TimeoutError):
        kind = "timeout"
    elif isinstance(exc, asyncio.CancelledError):  # aiohttp runs on asyncio only
        kind = "cancelled"
    else:
        kind = "disconnect"
    return ExchangeError(kind, type(exc).__name__)


def _ws_scheme(scheme: str) -> str:
    return {"http": "ws", "https": "wss"}.get(scheme, scheme)


def kept_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` without hop-by-hop, length, encoding and WebSocket handshake headers."""
    return {name: value for name, value in headers.items() if name.lower() not in _DROPPED_HEADERS}

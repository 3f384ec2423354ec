"""The replay server: answers swarmpod's requests with a cassette's recorded exchanges.

Every host of the recording (the RunPod API, each worker's SwarmUI) becomes a path prefix
``/o<N>`` of one local server on ``127.0.0.1``; URLs that pointed at those hosts inside bodies
and WebSocket messages are rewritten to the prefixes, so the engine follows them here. A
request is matched to the next unused recorded exchange with the same method, host and path
(the query is not compared); the answer comes after the recorded duration on the loop clock.
WebSocket upgrades are accepted and the server's messages played back with their recorded
gaps. A request with no recorded exchange is answered by dropping its connection and noted as
a divergence.

Failures replay as they happened: a dropped connection is dropped again, a request swarmpod
gave up on (timeout, cancellation) gets no answer until swarmpod gives up again. A connection
that was refused never reached the server, so :meth:`CassetteServer.client_middleware` raises
it on the client's side; the same middleware refuses any host outside the cassette, so a
replay never touches the network.
"""

from __future__ import annotations

import contextlib
import errno
import re
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Final, Self

import aiohttp
import anyio
from aiohttp import web
from aiohttp.client_middlewares import ClientHandlerType
from yarl import URL

from ._cassette import Cassette, Exchange, WsMessage
from ._cassette_tape import ExchangeTape, Key

__all__ = ["CassetteServer", "http_origin"]

_PREFIX: Final = re.compile(r"^/o(\d+)(/.*)?$")
_CLOSING: Final = (
    aiohttp.WSMsgType.CLOSE,
    aiohttp.WSMsgType.CLOSING,
    aiohttp.WSMsgType.CLOSED,
    aiohttp.WSMsgType.ERROR,
)


def http_origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, with ws/wss spelt http/https.

    >>> http_origin("wss://abc-7801.proxy.runpod.net/API/GenerateText2ImageWS")
    'https://abc-7801.proxy.runpod.net'
    """
    parsed = URL(url)
    scheme = {"ws": "http", "wss": "https"}.get(parsed.scheme, parsed.scheme)
    return str(parsed.with_scheme(scheme).origin())


class CassetteServer:
    """Serves a cassette back on ``127.0.0.1`` (a free port), in the current event loop.

    >>> async def main(cassette: Cassette) -> None:                      # doctest: +SKIP
    ...     async with CassetteServer(cassette) as server, aiohttp.ClientSession(
    ...         middlewares=(server.client_middleware,)
    ...     ) as session:
    ...         settings = settings.replace(runpod_base_url=server.runpod_base_url)

    Args:
        cassette: what to serve.
        on_exchange: called with a short description of each failed or unusual exchange
            served (for the replay's timeline).

    Attributes:
        served: recorded exchanges handed out so far.
        started_at: the loop time the replay started (when the server started, unless set).
        max_drift: the largest gap between a request's time in the replay and in the
            recording, in seconds.
        unexpected: one text per request the cassette had no exchange for.
        diverged: set at the first unexpected request.
    """

    def __init__(
        self, cassette: Cassette, *, on_exchange: Callable[[str], None] | None = None
    ) -> None:
        self.cassette = cassette
        self._on_exchange = on_exchange or (lambda text: None)
        base = cassette.runpod_base_url
        self._origins: list[str] = [http_origin(base)] if base else []
        self._base_path = URL(base).path.rstrip("/") if base else ""
        for exchange in cassette.exchanges:
            origin = http_origin(exchange.url)
            if origin not in self._origins:
                self._origins.append(origin)
        self._tape = ExchangeTape(cassette.exchanges, self._recorded_key)
        self._runner: web.AppRunner | None = None
        self._url = ""
        self._rewrites: list[tuple[str, str]] = []
        self._pattern: re.Pattern[str] | None = None
        self.served = 0
        self.started_at = 0.0
        self.max_drift = 0.0
        self.unexpected: list[str] = []
        self.diverged = anyio.Event()

    def __repr__(self) -> str:
        return f"CassetteServer({self.cassette.source!r}, url={self._url!r})"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` once started."""
        if not self._url:
            raise RuntimeError("the cassette server is not running; use 'async with'")
        return self._url

    @property
    def runpod_base_url(self) -> str:
        """The RunPodBaseUrl that leads to the recorded RunPod API."""
        return self.rewrite(self.cassette.runpod_base_url)

    def origin_name(self, index: int) -> str:
        """``runpod`` for the RunPod API's host, ``swarm<N>`` for the workers' hosts."""
        return "runpod" if index == 0 else f"swarm{index}"

    def _took(self, exchange: Exchange) -> None:
        self.served += 1
        drift = abs(anyio.current_time() - self.started_at - exchange.t)
        self.max_drift = max(self.max_drift, drift)

    def unused(self) -> list[Exchange]:
        """Recorded exchanges nobody asked for (those swarmpod had abandoned excluded)."""
        return [
            e
            for e in self._tape.unused()
            if e.error is None or e.error.kind not in ("cancelled", "timeout")
        ]

    def next_expected(self) -> Exchange | None:
        """The earliest recorded exchange still unused."""
        unused = self._tape.unused()
        return unused[0] if unused else None

    def describe(self, exchange: Exchange) -> str:
        """``POST runpod /local-ep/run``-style text for a recorded exchange."""
        index = self._origins.index(http_origin(exchange.url))
        return self._describe(exchange.method, index, URL(exchange.url).path, exchange.kind)

    # --- running ------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_route("*", r"/{tail:.*}", self._handle)
        runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        self.started_at = anyio.current_time()
        port = runner.addresses[0][1]
        self._url = f"http://127.0.0.1:{port}"
        for index, origin in enumerate(self._origins):
            target = f"{self._url}/o{index}"
            self._rewrites.append((origin, target))
            recorded = URL(origin)
            ws = {"http": "ws", "https": "wss"}[recorded.scheme]
            self._rewrites.append((str(recorded.with_scheme(ws)), target.replace("http", "ws", 1)))
        self._rewrites.sort(key=lambda pair: len(pair[0]), reverse=True)
        if self._rewrites:
            alternatives = "|".join(re.escape(origin) for origin, _ in self._rewrites)
            self._pattern = re.compile(f"(?:{alternatives})(?![\\w.:-])")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            with anyio.CancelScope(shield=True):
                await runner.cleanup()

    def stable(self, text: str) -> str:
        """``text`` with this server's URLs (their port changes every run) named for humans.

        ``http://127.0.0.1:PORT/o1`` becomes ``swarm1``, the bare address ``cassette-server``.
        """
        if not self._url:
            return text
        address = self._url.split("://", 1)[1]
        prefixed = re.compile(rf"(?:https?|wss?)://{re.escape(address)}/o(\d+)")
        text = prefixed.sub(lambda match: self.origin_name(int(match.group(1))), text)
        return text.replace(address, "cassette-server")

    def rewrite(self, text: str) -> str:
        """``text`` with every recorded host's URL pointed at this server."""
        if self._pattern is None:
            return text
        targets = dict(self._rewrites)
        return self._pattern.sub(lambda match: targets[match.group(0)], text)

    # --- matching -----------------------------------------------------------------------------

    def _recorded_key(self, exchange: Exchange) -> Key:
        index = self._origins.index(http_origin(exchange.url))
        return (exchange.method, index, URL(exchange.url).path, exchange.kind)

    def _key_of(self, method: str, path: str, headers: Mapping[str, str]) -> Key | None:
        match = _PREFIX.match(path)
        if match is None or int(match.group(1)) >= len(self._origins):
            return None
        kind = "ws" if headers.get("Upgrade", "").lower() == "websocket" else "http"
        return (method.upper(), int(match.group(1)), match.group(2) or "/", kind)

    def _describe(self, method: str, index: int, path: str, kind: str) -> str:
        if index == 0 and path.startswith(self._base_path + "/"):
            path = path[len(self._base_path) :]
        verb = "WS" if kind == "ws" else method
        return f"{verb} {self.origin_name(index)} {path}"

    def _unexpected_request(self, text: str) -> None:
        expected = self.next_expected()
        hint = (
            f"the cassette expected next {self.describe(expected)} "
            f"(line {expected.line}, recorded at {expected.t:.3f}s)"
            if expected is not None
            else "the cassette has no exchange left"
        )
        self.unexpected.append(f"unexpected request {text}: {hint}")
        self._on_exchange(f"unexpected request {text}")
        self.diverged.set()

    async def client_middleware(
        self, request: aiohttp.ClientRequest, handler: ClientHandlerType
    ) -> aiohttp.ClientResponse:
        """Keep requests on this server, and replay refused connections on the client's side.

        Pass it in ``middlewares`` of the session the replayed orchestrator uses.
        """
        url = request.url
        key = (
            self._key_of(request.method, url.path, request.headers)
            if http_origin(str(url)) == self._url
            else None
        )
        if key is None:
            self._unexpected_request(f"{request.method} {url.origin()}{url.path} (not recorded)")
            raise aiohttp.ClientConnectorError(
                request.connection_key,
                OSError(errno.ECONNREFUSED, "replay: host outside the cassette"),
            )
        exchange = self._tape.peek(key)
        if exchange is not None and exchange.error is not None and exchange.error.kind == "connect":
            self._tape.take(key)
            self._took(exchange)
            await anyio.sleep(exchange.dt)
            self._on_exchange(f"{self.describe(exchange)} → {exchange.error.type}")
            if exchange.error.type == "ConnectionTimeoutError":
                raise aiohttp.ConnectionTimeoutError(f"Connection timeout to host {url}")
            raise aiohttp.ClientConnectorError(
                request.connection_key,
                ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed (recorded)"),
            )
        return await handler(request)

    # --- serving ------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        key = self._key_of(request.method, request.path, request.headers)
        first = self._tape.peek(key) if key is not None else None
        if key is None or first is None:
            self._unexpected(request, key)
            return _drop(request)
        if first.kind == "ws" and first.status == 101:
            return await self._play_ws(request, key, first)
        exchange = self._tape.take(key, await request.read())
        assert exchange is not None
        self._took(exchange)
        if exchange.error is not None:
            return await self._fail(request, exchange)
        await anyio.sleep(exchange.dt)
        assert exchange.status is not None
        if not 200 <= exchange.status < 300:
            self._on_exchange(f"{self.describe(exchange)} → {exchange.status}")
        body = exchange.body or b""
        if body:
            with contextlib.suppress(UnicodeDecodeError):  # binary (an image): as recorded
                body = self.rewrite(body.decode("utf-8")).encode("utf-8")
        return web.Response(status=exchange.status, body=body, headers=dict(exchange.headers))

    def _unexpected(self, request: web.Request, key: Key | None) -> None:
        if key is None:
            self._unexpected_request(f"{request.method} {request.path}")
        else:
            self._unexpected_request(self._describe(key[0], key[1], key[2], key[3]))

    async def _fail(self, request: web.Request, exchange: Exchange) -> web.StreamResponse:
        """Fail the request as it failed in the recording."""
        assert exchange.error is not None
        if exchange.error.kind in ("timeout", "cancelled"):
            self._on_exchange(f"{self.describe(exchange)} → no answer ({exchange.error.type})")
            await anyio.sleep_forever()  # until swarmpod gives up (handler cancellation)
        await anyio.sleep(exchange.dt)
        self._on_exchange(f"{self.describe(exchange)} → {exchange.error.type}")
        return _drop(request)

    async def _play_ws(self, request: web.Request, key: Key, first: Exchange) -> web.StreamResponse:
        """Accept the upgrade, then play the recorded messages of the matching exchange.

        Which recorded WebSocket this is shows only in the client's first message, so the
        upgrade takes the time of the first candidate's.
        """
        await anyio.sleep(first.dt)
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        if not first.messages or first.messages[0].sender != "client":
            exchange = self._tape.take(key)
            assert exchange is not None
            self._took(exchange)
            return await self._play(request, ws, exchange.messages, exchange.t + exchange.dt)
        received = await ws.receive()
        sent = received.data if received.type is aiohttp.WSMsgType.TEXT else None
        chosen = self._tape.take(key, sent if isinstance(sent, str) else None)
        if chosen is None:  # another socket took the last one meanwhile
            self._unexpected(request, key)
            await ws.close()
            return ws
        self._took(chosen)
        if received.type in _CLOSING:
            return ws
        return await self._play(request, ws, chosen.messages[1:], chosen.messages[0].t)

    async def _play(
        self,
        request: web.Request,
        ws: web.WebSocketResponse,
        messages: Sequence[WsMessage],
        previous: float,
    ) -> web.WebSocketResponse:
        """Send the server's messages with their recorded gaps; wait for the client's."""
        for message in messages:
            if message.sender == "client":
                received = await ws.receive()
                previous = message.t
                if received.type in _CLOSING:
                    return ws
                continue
            await anyio.sleep(max(0.0, message.t - previous))
            previous = message.t
            if not await self._send(request, ws, message):
                return ws
        async for _ in ws:  # what the client still sends, until it closes
            pass
        return ws

    async def _send(
        self, request: web.Request, ws: web.WebSocketResponse, message: WsMessage
    ) -> bool:
        """Play one server message; False once the connection is over."""
        if message.type == "text" and isinstance(message.data, str):
            await ws.send_str(self.rewrite(message.data))
        elif message.type == "binary" and isinstance(message.data, bytes):
            await ws.send_bytes(message.data)
        elif message.type == "close":
            self._on_exchange(f"WS closed by the server ({message.code})")
            await ws.close(code=message.code or aiohttp.WSCloseCode.OK)
            return False
        else:  # closed / error: the connection was lost without a close frame
            self._on_exchange("WS connection lost")
            _drop(request)
            return False
        return True


def _drop(request: web.Request) -> web.Response:
    """Close the client's connection without an answer."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=499)  # never sent

"""A recorded cassette as aioresponses mocks: replay a RunPod timeline in unit tests.

The cassette server (:class:`~orchestrator.replay.CassetteServer`) replays a recording on a
real local port; this module gives an embedder's *unit tests* the same timeline without any
server: every recorded HTTP exchange becomes a one-shot aioresponses mock, answered in the
recorded order for its method and path (the query is not compared, as in the server).

>>> from orchestrator.replay import cassette_mocks, load_cassette     # doctest: +SKIP
>>> async def test_my_poller() -> None:                               # doctest: +SKIP
...     with cassette_mocks(load_cassette("fox.cassette.jsonl")) as mocks:
...         await my_code_that_runs_and_polls_a_job(base_url=mocks.runpod_base_url)
...     mocks.assert_all_used()

What replays: status, headers and body of each answer (RunPod's and, with ``swarmui=True``,
the HTTP calls to the workers' SwarmUI); refused connections and dropped connections raise
the aiohttp exceptions they raised; a request the recording gave up on with a timeout raises
at once (aiohttp's own timeouts do not run under aioresponses); a request the caller
cancelled never answers, until the caller cancels it again. With ``recorded_durations``
each answer waits its recorded duration on the loop clock (instant under looptime).
WebSocket generations are not replayed (aioresponses cannot mock a WebSocket): record with
``Transport = "http"`` to replay whole generations, or use :func:`replay_cassette`.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import anyio
from aiohttp.client_reqrep import ConnectionKey
from yarl import URL

from .._extras import import_extra
from ._aioresponses_compat import ensure_aioresponses_compat
from ._cassette import Cassette, Exchange, ExchangeError
from ._cassette_load import load_cassette
from ._cassette_server import http_origin

__all__ = ["CassetteMocks", "add_cassette_mocks", "cassette_mocks"]


@dataclass
class CassetteMocks:
    """The exchanges of a cassette registered as aioresponses mocks, and which were used.

    Attributes:
        cassette: the recording.
        runpod_base_url: the RunPod base URL the mocks answer under (RunPodBaseUrl).
        exchanges: the exchanges registered, in recorded order.
        used: the exchanges answered so far, in the order they were.
    """

    cassette: Cassette
    runpod_base_url: str
    exchanges: tuple[Exchange, ...]
    used: list[Exchange] = field(default_factory=list)

    def unused(self) -> list[Exchange]:
        """Registered exchanges nobody asked for (those the recording abandoned excluded)."""
        taken = {exchange.seq for exchange in self.used}
        return [
            e
            for e in self.exchanges
            if e.seq not in taken and (e.error is None or e.error.kind != "cancelled")
        ]

    def assert_all_used(self) -> None:
        """Fail (AssertionError) naming the first recorded exchange that was never asked for."""
        unused = self.unused()
        if unused:
            first = unused[0]
            raise AssertionError(
                f"{len(unused)} recorded exchange(s) never requested; first: {first.method} "
                f"{URL(first.url).path} (line {first.line}, recorded at {first.t:.3f}s)"
            )


def add_cassette_mocks(
    mocked: Any,
    cassette: Cassette | str | Path,
    *,
    runpod_base_url: str | None = None,
    swarmui: bool = False,
    recorded_durations: bool = False,
) -> CassetteMocks:
    """Register ``cassette``'s HTTP exchanges on an active ``aioresponses`` instance.

    Args:
        mocked: a started ``aioresponses()``.
        cassette: the recording, or the path of its file.
        runpod_base_url: answer the RunPod exchanges under this base URL (e.g. the
            ``https://api.runpod.ai/v2`` the code under test uses) instead of the recorded one.
        swarmui: also register the HTTP exchanges with the workers' SwarmUI (at their
            recorded URLs); by default only RunPod's.
        recorded_durations: make each answer wait its recorded duration on the loop clock.

    Raises:
        MissingExtraError: aioresponses is not installed (``pip install 'swarmpod[testing]'``).
        CassetteError: the file cannot be read.
    """
    ensure_aioresponses_compat()
    recording = cassette if isinstance(cassette, Cassette) else load_cassette(cassette)
    recorded_base = recording.runpod_base_url.rstrip("/")
    base = (runpod_base_url or recorded_base).rstrip("/")
    runpod_origin = http_origin(recorded_base) if recorded_base else ""
    chosen = tuple(
        e
        for e in recording.exchanges
        if e.kind == "http" and (swarmui or http_origin(e.url) == runpod_origin)
    )
    mocks = CassetteMocks(recording, base, chosen)
    for exchange in chosen:
        url = URL(exchange.url).with_query(None).with_fragment(None)
        target = str(url)
        if recorded_base and target.startswith(recorded_base + "/"):
            target = base + target[len(recorded_base) :]
        mocked.add(
            re.compile(re.escape(target) + r"(?:\?.*)?$"),
            method=exchange.method,
            status=exchange.status or 200,
            body=exchange.body or b"",
            headers=dict(exchange.headers),
            content_type=_content_type(exchange),
            exception=_recorded_exception(exchange.error, URL(target)),
            callback=_answer(mocked, mocks, exchange, recorded_durations),
        )
    return mocks


@contextmanager
def cassette_mocks(
    cassette: Cassette | str | Path,
    *,
    runpod_base_url: str | None = None,
    swarmui: bool = False,
    recorded_durations: bool = False,
) -> Iterator[CassetteMocks]:
    """Start aioresponses with ``cassette``'s exchanges registered (see :func:`add_cassette_mocks`).

    Every ``aiohttp.ClientSession`` of the process is mocked inside the block; a request the
    cassette has no exchange for raises ``aiohttp.ClientConnectionError`` (aioresponses'
    "Connection refused").
    """
    aioresponses = import_extra(
        "aioresponses", extra="testing", feature="cassette mocks (aioresponses)"
    ).aioresponses
    ensure_aioresponses_compat()
    with aioresponses() as mocked:
        yield add_cassette_mocks(
            mocked,
            cassette,
            runpod_base_url=runpod_base_url,
            swarmui=swarmui,
            recorded_durations=recorded_durations,
        )


def _content_type(exchange: Exchange) -> str:
    for name, value in exchange.headers.items():
        if name.lower() == "content-type":
            return value
    return "application/octet-stream"


def _answer(
    mocked: Any, mocks: CassetteMocks, exchange: Exchange, wait: bool
) -> Callable[..., Awaitable[None]]:
    """The aioresponses callback of ``exchange``: note it as used, then wait as recorded.

    A plain ``async def`` (aioresponses awaits only what ``iscoroutinefunction`` accepts).
    """

    async def answer(url: URL, **kwargs: Any) -> None:
        mocks.used.append(exchange)
        if exchange.error is not None and exchange.error.kind == "cancelled":
            # The recorded caller stopped waiting: so will this one. aioresponses drops a
            # one-shot mock only once it has answered, so this one is dropped by hand.
            matches: dict[str, Any] = mocked._matches
            for key, match in list(matches.items()):
                if match.callback is answer:
                    del matches[key]
            await anyio.sleep_forever()
        if wait:
            await anyio.sleep(exchange.dt)

    return answer


def _recorded_exception(error: ExchangeError | None, url: URL) -> Exception | None:
    """The aiohttp exception a failed exchange raised, as near as its class name allows."""
    if error is None or error.kind == "cancelled":
        return None
    if error.kind == "connect":
        if error.type == "ConnectionTimeoutError":
            return aiohttp.ConnectionTimeoutError(f"Connection timeout to host {url} (recorded)")
        fields: dict[str, Any] = dict.fromkeys(ConnectionKey._fields)
        fields.update(host=url.host, port=url.port, is_ssl=url.scheme == "https")
        return aiohttp.ClientConnectorError(
            ConnectionKey(**fields),
            ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed (recorded)"),
        )
    if error.kind == "timeout":
        if error.type == "SocketTimeoutError":
            return aiohttp.SocketTimeoutError(f"Timeout on reading data from {url} (recorded)")
        return TimeoutError(f"{error.type} on {url} (recorded)")
    return aiohttp.ServerDisconnectedError(f"{error.type} (recorded)")

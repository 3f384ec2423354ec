"""Which recorded exchange answers a request: once each, in order per route, by content."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

from ._cassette import Exchange

__all__ = ["ExchangeTape", "Key"]

Key = tuple[str, int, str, str]
"""method, host index, path, ``http`` or ``ws``."""


class ExchangeTape:
    """The recorded exchanges, handed out once each, in order per (method, host, path, kind)."""

    def __init__(self, exchanges: Iterable[Exchange], key_of: Callable[[Exchange], Key]) -> None:
        self._queues: dict[Key, list[Exchange]] = {}
        self._unused: dict[int, Exchange] = {}
        for exchange in exchanges:
            self._queues.setdefault(key_of(exchange), []).append(exchange)
            self._unused[exchange.seq] = exchange

    def peek(self, key: Key) -> Exchange | None:
        """The next unused exchange for ``key``, left in place."""
        queue = self._queues.get(key)
        return queue[0] if queue else None

    def take(self, key: Key, sent: bytes | str | None = None) -> Exchange | None:
        """The first unused exchange for ``key`` whose request was ``sent`` (else the first).

        Concurrent requests on one route (two generations' WebSockets) can reach the server
        in another order than they were recorded in; their bodies tell them apart.
        """
        queue = self._queues.get(key)
        if not queue:
            return None
        chosen = queue[0]
        if sent is not None:
            chosen = next((e for e in queue if _similar(_first_sent(e), sent)), chosen)
        queue.remove(chosen)
        del self._unused[chosen.seq]
        return chosen

    def unused(self) -> list[Exchange]:
        """Every exchange not handed out yet, in recorded order."""
        return [self._unused[seq] for seq in sorted(self._unused)]


def _first_sent(exchange: Exchange) -> bytes | str | None:
    """What the client sent first: the request body, or a WebSocket's first message."""
    if exchange.kind == "ws":
        first = exchange.messages[0] if exchange.messages else None
        return first.data if first is not None and first.sender == "client" else None
    return exchange.request_body


def _similar(recorded: bytes | str | None, sent: bytes | str) -> bool:
    """The same request, but for the seed (the client draws unset seeds at random)."""
    if recorded is None:
        return not sent
    as_text = [
        v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in (recorded, sent)
    ]
    if as_text[0] == as_text[1]:
        return True
    try:
        old, new = (json.loads(text) for text in as_text)
    except ValueError:
        return False
    if not isinstance(old, dict) or not isinstance(new, dict):
        return False
    old.pop("seed", None)
    new.pop("seed", None)
    return bool(old == new)

"""Which request of a trace caused each RunPod API call, seen from the client side.

Each replayed request runs in its own task and sets :data:`current_request`; an aiohttp trace
hook counts every request to the RunPod API (URLs under the emulator's ``base_url``) against
the request whose context sent it. Tasks inherit the context of the task that starts them, so
a lease task the pool starts on behalf of a generation (its ``/run``, its ``/stream`` polls,
its ``/cancel``) counts against that generation; calls made outside any request (start-up,
shutdown) count against None.
"""

from __future__ import annotations

from collections import Counter
from contextvars import ContextVar
from types import SimpleNamespace

import aiohttp

__all__ = ["CallCounter", "current_request"]

current_request: ContextVar[int | None] = ContextVar("bench_current_request", default=None)
"""The index of the trace request the running task works for (None outside any)."""


class CallCounter:
    """Counts RunPod API requests per trace request (every HTTP attempt, retries included).

    >>> counter = CallCounter("http://127.0.0.1:1/v2")
    >>> counter.of(0), counter.unattributed
    (0, 0)

    Args:
        api_base_url: the RunPod API base (``Emulator.base_url``); other URLs (the workers'
            SwarmUIs) are not counted.
    """

    def __init__(self, api_base_url: str) -> None:
        self._prefix = api_base_url.rstrip("/") + "/"
        self._counts: Counter[int | None] = Counter()

    def trace_config(self) -> aiohttp.TraceConfig:
        """An aiohttp trace config to pass to the ``ClientSession`` of the clients measured."""
        config = aiohttp.TraceConfig()

        async def on_request_start(
            session: aiohttp.ClientSession,
            context: SimpleNamespace,
            params: aiohttp.TraceRequestStartParams,
        ) -> None:
            if str(params.url).startswith(self._prefix):
                self._counts[current_request.get()] += 1

        config.on_request_start.append(on_request_start)
        return config

    def of(self, request: int) -> int:
        """RunPod API requests counted against trace request ``request``."""
        return self._counts[request]

    @property
    def unattributed(self) -> int:
        """RunPod API requests made outside any trace request."""
        return self._counts[None]

    @property
    def total(self) -> int:
        """Every RunPod API request counted."""
        return sum(self._counts.values())

"""When a woken worker's SwarmUI can take a generation, and how many at once."""

from __future__ import annotations

from collections.abc import Callable

import anyio

from ..swarmui import SwarmUIClient

__all__ = ["wait_until_swarm_ready"]


async def wait_until_swarm_ready(
    swarm: SwarmUIClient, *, poll_interval: float, on_loading: Callable[[], None]
) -> int:
    """Open a session, then wait until none of the worker's backends is loading.

    Calls ``on_loading`` at each check that finds a backend still loading; the caller bounds
    the wait. Returns the worker's concurrency: the ``max_usages`` of its usable backends
    summed (SwarmUI queues anything beyond), at least 1.
    """
    await swarm.get_new_session()
    while True:
        backends = await swarm.list_backends()
        if not any(backend.is_loading for backend in backends.values()):
            usable = [
                b.max_usages
                for b in backends.values()
                if b.enabled and b.status not in ("errored", "disabled")
            ]
            return max(1, sum(usable))
        on_loading()
        await anyio.sleep(poll_interval)

"""Span timestamps from the event loop's clock, so virtual time (looptime) shows in traces.

Spans need wall-clock nanoseconds; swarmpod's durations come from the loop clock. Each running
loop is anchored once to the wall clock, and later timestamps follow the loop from there: a
120 s cold start replayed in virtual time still lasts 120 s in Jaeger and in the report.
"""

from __future__ import annotations

import asyncio
import time
import weakref

__all__ = ["span_time_ns"]

_anchors: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[int, float]] = (
    weakref.WeakKeyDictionary()
)


_last: tuple[asyncio.AbstractEventLoop | None, int, float] = (None, 0, 0.0)


def span_time_ns() -> int:
    """Now, in ns since the epoch, following the running loop's clock (wall clock outside)."""
    global _last
    loop = asyncio._get_running_loop()
    if loop is None:
        return time.time_ns()
    last_loop, wall_ns, loop_s = _last
    if last_loop is not loop:  # another loop than last time (tests run one per test)
        anchor = _anchors.get(loop)
        if anchor is None:
            anchor = (time.time_ns(), loop.time())
            _anchors[loop] = anchor
        wall_ns, loop_s = anchor
        _last = (loop, wall_ns, loop_s)
    return wall_ns + int((loop.time() - loop_s) * 1_000_000_000)

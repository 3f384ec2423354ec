"""The v1 worker's ``keepalive`` job ends after its duration, whatever the clock's rounding.

In virtual time (looptime) the clock moves on a grid of microseconds, and a deadline made as
``now + duration`` can fall a hair (1e-13 s) past the grid point the clock stops at. A loop
that sleeps "what is left until the deadline" then sleeps that hair again and again and the
clock never moves: the soak test once spun there for good. The keepalive counts the seconds it
slept instead of reading the clock.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import anyio
import pytest

from orchestrator.emulator import _v1_handler

pytestmark = pytest.mark.anyio

_MAX_SLEEPS = 1000


class GridClock:
    """A clock on a microsecond grid that stops at the grid point just below a deadline,
    as looptime's may."""

    def __init__(self, start: float) -> None:
        self.now = start
        self.sleeps = 0

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        if self.sleeps > _MAX_SLEEPS:
            raise AssertionError("the keepalive keeps sleeping: it would spin for ever")
        self.now = math.floor((self.now + seconds) * 1_000_000) / 1_000_000
        await anyio.lowlevel.checkpoint()


async def test_a_keepalive_ends_when_its_deadline_falls_between_two_clock_ticks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = GridClock(start=1992.998319)  # + 210 s = 2202.9983190000003: past the grid point
    monkeypatch.setattr(anyio, "current_time", clock.time)
    monkeypatch.setattr(anyio, "sleep", clock.sleep)
    worker: Any = SimpleNamespace(
        swarm=SimpleNamespace(base_url="http://swarm"), public_url="http://swarm", id="w1"
    )

    answer = await _v1_handler.handle_v1(
        worker, {"action": "keepalive", "duration": 210, "interval": 30}
    )

    assert answer["success"] is True
    assert (answer["pings"], answer["failures"]) == (7, 0)  # 7 x 30 s: one ping per interval
    assert clock.sleeps == 7

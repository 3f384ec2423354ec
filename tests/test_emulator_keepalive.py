"""The emulator's waits end on a clock that moves on a grid, whatever its rounding.

In virtual time (looptime) the clock moves on a grid of microseconds, and a deadline made as
``now + duration`` can fall a hair (1e-13 s) past the grid point the clock stops at. A loop
that sleeps "what is left until the deadline" then sleeps that hair again and again and the
clock never moves: the soak test once spun there for good. The keepalive counts its intervals
instead of reading the clock; the fake SwarmUI's wait for its backend sleeps at least a
microsecond.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import anyio
import pytest

from orchestrator.emulator import _v1_handler

pytestmark = pytest.mark.anyio

_MAX_SLEEPS = 1000


class GridClock:
    """A clock that counts whole microseconds, as looptime's does: a sleep moves it by the
    sleep rounded to the microsecond (so a sleep of 1e-13 s does not move it)."""

    def __init__(self, start: float) -> None:
        self.ticks = round(start * 1_000_000)
        self.sleeps = 0

    def time(self) -> float:
        return self.ticks / 1_000_000

    async def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        if self.sleeps > _MAX_SLEEPS:
            raise AssertionError("it keeps sleeping: it would spin for ever")
        self.ticks += round(seconds * 1_000_000)
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


async def test_a_generation_waiting_for_the_backend_to_load_goes_on_when_it_has_loaded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from orchestrator.emulator.swarm import SwarmConfig
    from orchestrator.emulator.swarm._config import SwarmFaults
    from orchestrator.emulator.swarm._engine import _Run
    from orchestrator.emulator.swarm._state import Generation, Session, SwarmState

    clock = GridClock(start=1992.998319)
    monkeypatch.setattr(anyio, "current_time", clock.time)
    monkeypatch.setattr(anyio, "sleep", clock.sleep)
    state = SwarmState(SwarmConfig(backend_load_s=210.0), SwarmFaults(), "w1")
    state.started_at = clock.time()  # loads until 2202.9983190000003: past the grid point
    request: Any = SimpleNamespace(donotsave=True)
    run = _Run(state, Generation(Session("s1"), 1), request, None, lambda: None, 0)

    await run.wait_for_backend()

    assert state.backend_state() == "running"
    assert clock.sleeps <= 2

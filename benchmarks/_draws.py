"""The start times an emulated endpoint draws, reproduced offline from its seed.

An ``EndpointConfig`` with ranged start times (``cold_start_s=(60, 90)``) makes its endpoint
draw each worker's boot from ``random.Random(seed)``: the k-th worker started takes the k-th
number ``u_k`` of that stream and boots ``low + (high - low) * u_k`` seconds, with the
FlashBoot range when the emulator grants that start a revival, else the cold range
(``random.uniform``; the endpoint uses its RNG for nothing else). Whatever a policy does, its
k-th start gets ``u_k``: the floor (``_floor``) plans with exactly the numbers every run on that
seed sees, and ``boots_match`` checks a run's ledger against them.

>>> starts = StartDraws(cold_s=(60.0, 90.0), flashboot_s=(2.0, 10.0), seed=7)
>>> [round(u, 4) for u in starts.stream(3)]
[0.3238, 0.1508, 0.6509]
>>> round(starts.cold(0), 2), round(starts.flashboot(0), 2)
(69.71, 4.59)
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from orchestrator.emulator import EndpointConfig, LedgerEntry

__all__ = ["FLASHBOOT_WINDOW_S", "StartDraws", "boots_match"]

FLASHBOOT_WINDOW_S: Final = 600.0
"""A worker started at most this long after another one stopped is revived by FlashBoot (the
emulator's rule: each stop grants one revival)."""

_BOOT_TOLERANCE_S: Final = 1e-3
_BLOCK: Final = 256


@dataclass(frozen=True)
class StartDraws:
    """What each start of a worker costs on one seeded endpoint, draw by draw.

    Attributes:
        cold_s: (low, high) of a cold start.
        flashboot_s: (low, high) of a FlashBoot revival; None: never granted (every start is
            cold, as on an endpoint with FlashBoot off or no cached host).
        seed: the endpoint's RNG seed.
        flashboot_window_s: how soon after a stop a start is a revival.
    """

    cold_s: tuple[float, float]
    flashboot_s: tuple[float, float] | None
    seed: int
    flashboot_window_s: float = FLASHBOOT_WINDOW_S

    @classmethod
    def of(cls, config: EndpointConfig) -> StartDraws:
        """The draws of an emulated endpoint (its start times must be ranges, or no FlashBoot)."""
        cold, flashboot = config.cold_start_s, config.flashboot_start_s
        if not isinstance(cold, tuple) or not (flashboot is None or isinstance(flashboot, tuple)):
            raise ValueError("a fixed start time draws nothing: give (low, high) ranges")
        return cls(cold, flashboot, config.seed)

    def stream(self, count: int) -> list[float]:
        """The first ``count`` numbers ``u_1..u_count`` of the endpoint's RNG (index 0 = u_1)."""
        return list(_stream(self.seed, count))

    def cold(self, index: int) -> float:
        """Seconds of a cold start that takes draw ``index`` (0-based)."""
        low, high = self.cold_s
        return low + (high - low) * _stream(self.seed, index + 1)[index]

    def flashboot(self, index: int) -> float:
        """Seconds of a FlashBoot revival that takes draw ``index`` (a cold start if never)."""
        if self.flashboot_s is None:
            return self.cold(index)
        low, high = self.flashboot_s
        return low + (high - low) * _stream(self.seed, index + 1)[index]

    def boot(self, index: int, *, flashboot: bool) -> float:
        """Seconds of the start that takes draw ``index``, revived or cold."""
        return self.flashboot(index) if flashboot else self.cold(index)


@lru_cache(maxsize=64)
def _stream_block(seed: int, blocks: int) -> tuple[float, ...]:
    rng = random.Random(seed)
    return tuple(rng.random() for _ in range(blocks * _BLOCK))


def _stream(seed: int, count: int) -> tuple[float, ...]:
    return _stream_block(seed, -(-count // _BLOCK))[:count]


def boots_match(draws: StartDraws, ledger: Sequence[LedgerEntry]) -> bool:
    """Whether every worker of ``ledger`` (start order) booted exactly its draw.

    A worker stopped while still booting is only checked not to have booted longer.
    """
    for index, entry in enumerate(ledger):
        expected = draws.boot(index, flashboot=entry.flashboot)
        booted = entry.boot_s
        finished = entry.execution_s > 0 or entry.idle_s > 0
        if finished and not math.isclose(booted, expected, abs_tol=_BOOT_TOLERANCE_S):
            return False
        if not finished and booted > expected + _BOOT_TOLERANCE_S:
            return False
    return True

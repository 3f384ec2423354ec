"""Replay one trace under one policy against the emulator, in the loop's (virtual) time.

Every request of the trace is a task that sleeps until its arrival, then generates; all run
concurrently, as the trace says. After the last image the replay waits until every worker has
stopped, so that each worker's idle tail is billed, then reads what the endpoint itself
recorded: its billing ledger and every RunPod API call it served (method, route, status).
Nothing is taken from swarmpod's own accounting.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

import aiohttp
import anyio

from orchestrator import Orchestrator, RetryPolicy, Settings
from orchestrator.emulator import (
    EmulatedEndpoint,
    Emulator,
    EmulatorConfig,
    EndpointConfig,
    LedgerEntry,
)
from orchestrator.emulator.swarm import SwarmConfig

from ._draws import StartDraws
from ._seed import SeedBackend, SeedSettings
from ._traces import Trace

__all__ = ["REGIMES", "Endpoint", "Outcome", "Policy", "Regime", "Replay", "replay"]

ENDPOINT_ID: Final = "bench"
KEY: Final = "bench-key"
DRAIN_LIMIT_S: Final = 4 * 3600.0
"""The replay stops waiting for workers to stop after this much loop time past the last image."""
POLL_INTERVAL_MS: Final = 2000

Regime = Literal["flashboot", "cold"]
"""``flashboot``: the emulator revives a worker started within 10 min of a stop (2-10 s);
``cold``: FlashBoot never granted, every start cold. RunPod promises neither."""
REGIMES: Final[tuple[Regime, ...]] = ("flashboot", "cold")


@dataclass(frozen=True)
class Policy:
    """How workers are held.

    Attributes:
        name: the column name (``seed-5s``, ``swarmpod-auto``, ``swarmpod-60s``, ...).
        driver: ``seed`` (the seed extension re-enacted on v1 workers, see ``_seed``) or
            ``swarmpod`` (``orchestrator.Orchestrator`` on v2 leases).
        idle: ``seed``: the endpoint's idle timeout in seconds; ``swarmpod``: its
            ``IdleTimeoutSec`` (seconds or ``"auto"``; the endpoint then keeps RunPod's 5 s).
    """

    name: str
    driver: Literal["seed", "swarmpod"]
    idle: float | Literal["auto"]


@dataclass(frozen=True)
class Endpoint:
    """The emulated endpoint every policy of one trace runs on (times in seconds).

    Attributes:
        regime: ``flashboot`` (revivals granted) or ``cold`` (never).
        seed: seed of the endpoint's start-time RNG.
        max_workers: the endpoint's (and swarmpod's) ``MaxWorkers``.
        cold_start_s: (low, high) of a cold start, drawn from the seeded RNG.
        flashboot_start_s: (low, high) of a FlashBoot revival (``flashboot`` regime).
        steps: steps of every generation.
        seconds_per_step: the fake SwarmUI's speed: an image takes ``steps * seconds_per_step``.
        image_size: width and height of every image in pixels.
    """

    regime: Regime = "flashboot"
    seed: int = 1
    max_workers: int = 3
    cold_start_s: tuple[float, float] = (60.0, 90.0)
    flashboot_start_s: tuple[float, float] = (2.0, 10.0)
    steps: int = 4
    seconds_per_step: float = 1.0
    image_size: int = 64

    @property
    def generation_s(self) -> float:
        """Seconds one single-image generation takes on a worker."""
        return self.steps * self.seconds_per_step

    def config(self, policy: Policy) -> EndpointConfig:
        """The emulator's configuration of this endpoint under ``policy``."""
        seed_policy = policy.driver == "seed"
        return EndpointConfig(
            max_workers=self.max_workers,
            cold_start_s=self.cold_start_s,
            flashboot_start_s=self.flashboot_start_s if self.regime == "flashboot" else None,
            seed=self.seed,
            idle_timeout_s=float(policy.idle) if seed_policy else 5.0,
            protocol="v1" if seed_policy else "v2",
            swarm=SwarmConfig(seconds_per_step=self.seconds_per_step, progress_updates=2),
        )

    @property
    def draws(self) -> StartDraws:
        """What each start costs on this endpoint, draw by draw (the same for every policy)."""
        flashboot = self.flashboot_start_s if self.regime == "flashboot" else None
        return StartDraws(self.cold_start_s, flashboot, self.seed)

    def params(self, index: int) -> dict[str, Any]:
        """The SwarmUI parameters of request ``index``."""
        size = self.image_size
        return {
            "prompt": f"benchmark request {index}",
            "width": size,
            "height": size,
            "steps": self.steps,
            "seed": index,
        }


@dataclass(frozen=True)
class Outcome:
    """What became of one request.

    Attributes:
        arrival: its arrival in the trace (s).
        latency: seconds from its arrival to its image; None if it failed.
        cold_start: whether it had to wait for a worker to start.
        error: why it failed, ``Type(CauseType): message``, else None.
    """

    arrival: float
    latency: float | None
    cold_start: bool
    error: str | None


@dataclass(frozen=True)
class Replay:
    """The raw figures of one replay, as the emulator recorded them.

    Attributes:
        outcomes: one per request, in trace order.
        ledger: the endpoint's billing ledger after every worker stopped.
        api_calls: ``(method, route, status)`` of every RunPod API request the endpoint served.
        workers_left: workers still live when the replay gave up waiting (0 normally).
        virtual_s: loop seconds the replay took.
        wall_s: wall seconds the replay took.
    """

    outcomes: tuple[Outcome, ...]
    ledger: tuple[LedgerEntry, ...]
    api_calls: tuple[tuple[str, str, int], ...]
    workers_left: int
    virtual_s: float
    wall_s: float

    @property
    def billed_seconds(self) -> int:
        """GPU-seconds billed, every worker's start to stop rounded up per worker."""
        return sum(entry.billed_seconds for entry in self.ledger)


Generate = Callable[[int], Awaitable[bool]]
"""Generates trace request ``index``; returns whether it was a cold start."""


async def replay(trace: Trace, policy: Policy, endpoint: Endpoint) -> Replay:
    """Replay ``trace`` under ``policy`` on a fresh emulated ``endpoint`` (run under looptime)."""
    wall = time.perf_counter()
    config = EmulatorConfig(endpoints={ENDPOINT_ID: endpoint.config(policy)}, api_keys=(KEY,))
    async with Emulator(config) as emulator:
        emulated = emulator.endpoint(ENDPOINT_ID)
        # No overall cap (SwarmUI's HttpClient allows 1000 per server), but at most 100
        # connections to one server: a burst beyond a fake server's accept backlog (128) would
        # have its connects retried by the kernel after a real second, which virtual time turns
        # into connect timeouts that no real deployment would see.
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=100)
        async with aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=None)
        ) as http:
            started = anyio.current_time()
            if policy.driver == "seed":
                outcomes = await _replay_seed(trace, endpoint, emulator, http)
            else:
                outcomes = await _replay_swarmpod(trace, policy, endpoint, emulator, http)
            left = len(emulated.running_workers())
            virtual = anyio.current_time() - started
        return Replay(
            outcomes=outcomes,
            ledger=tuple(emulated.ledger),
            api_calls=tuple(emulated.api_calls),
            workers_left=left,
            virtual_s=virtual,
            wall_s=time.perf_counter() - wall,
        )


async def _replay_seed(
    trace: Trace, endpoint: Endpoint, emulator: Emulator, http: aiohttp.ClientSession
) -> tuple[Outcome, ...]:
    backend = SeedBackend(
        http,
        emulator.base_url,
        ENDPOINT_ID,
        KEY,
        SeedSettings(poll_interval_ms=POLL_INTERVAL_MS),
    )

    async def generate(index: int) -> bool:
        result = await backend.generate(endpoint.params(index))
        return result.cold_start

    done = await _run_trace(trace, generate)
    await _drain(emulator.endpoint(ENDPOINT_ID))
    return done


async def _replay_swarmpod(
    trace: Trace,
    policy: Policy,
    endpoint: Endpoint,
    emulator: Emulator,
    http: aiohttp.ClientSession,
) -> tuple[Outcome, ...]:
    settings = Settings.load(
        env={},
        overrides={
            "EndpointId": ENDPOINT_ID,
            "RunPodBaseUrl": emulator.base_url,
            "RunPodApiKey": KEY,
            "WorkerProtocol": "v2",
            "IdleTimeoutSec": policy.idle,
            "MaxWorkers": endpoint.max_workers,
            "PollIntervalMs": POLL_INTERVAL_MS,
            "StateFile": ":memory:",
        },
    )
    retry = RetryPolicy(rng=random.Random(0))
    async with Orchestrator(settings, session=http, retry=retry) as orch:

        async def generate(index: int) -> bool:
            result = await orch.generate(endpoint.params(index), images=1)
            return result.cold_start

        done = await _run_trace(trace, generate)
        await _drain(emulator.endpoint(ENDPOINT_ID))  # the idle window runs out in here
    return done


async def _run_trace(trace: Trace, generate: Generate) -> tuple[Outcome, ...]:
    """Start every request at its arrival (loop time), concurrently; wait for all."""
    start = anyio.current_time()
    found: dict[int, Outcome] = {}

    async def one(index: int, arrival: float) -> None:
        await anyio.sleep_until(start + arrival)
        begun = anyio.current_time()
        latency: float | None = None
        cold, error = False, None
        try:
            cold = await generate(index)
            latency = anyio.current_time() - begun
        except Exception as exc:  # a failed request is a figure of the policy, not a crash
            cause = exc.__cause__
            kind = type(exc).__name__ + (f"({type(cause).__name__})" if cause else "")
            error = f"{kind}: {exc}"
        found[index] = Outcome(arrival, latency, cold, error)

    async with anyio.create_task_group() as group:
        for index, arrival in enumerate(trace.arrivals):
            group.start_soon(one, index, arrival)
    return tuple(found[index] for index in range(len(trace)))


async def _drain(endpoint: EmulatedEndpoint) -> None:
    """Wait (loop time) until every worker of ``endpoint`` stopped, or ``DRAIN_LIMIT_S``."""
    await endpoint.wait_until(lambda: not endpoint.running_workers(), DRAIN_LIMIT_S)

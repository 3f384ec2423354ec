"""Test support: an emulator and an orchestrator wired together on real loopback HTTP."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import anyio

from observability import Telemetry
from orchestrator import Orchestrator, ProgressEvent, Settings
from orchestrator.emulator import (
    EmulatedEndpoint,
    EmulatedWorker,
    Emulator,
    EmulatorConfig,
    EndpointConfig,
    WorkerState,
)

ENDPOINT = "test-ep"
KEY = "test-key-0123456789"


@dataclass
class World:
    """A running emulator endpoint and an orchestrator pointed at it."""

    emulator: Emulator
    endpoint: EmulatedEndpoint
    orch: Orchestrator
    events: list[ProgressEvent] = field(default_factory=list)

    def record(self, event: ProgressEvent) -> None:
        self.events.append(event)


@contextlib.asynccontextmanager
async def world(
    endpoint: EndpointConfig | None = None,
    *,
    key: str | None = KEY,
    telemetry: Telemetry | None = None,
    **settings: Any,
) -> AsyncIterator[World]:
    """Start an emulator with one endpoint and an orchestrator using ``settings``.

    ``WorkerProtocol`` defaults to the endpoint's image (``v1`` unless configured).
    """
    endpoint = endpoint or EndpointConfig(cold_start_s=30.0)
    config = EmulatorConfig(endpoints={ENDPOINT: endpoint}, api_keys=(KEY,))
    async with Emulator(config) as emulator:
        overrides: dict[str, Any] = {
            "EndpointId": ENDPOINT,
            "RunPodBaseUrl": emulator.base_url,
            "PollIntervalMs": 1000,
            # The emulator's image is known here; tests of `auto` detection pass it explicitly.
            "WorkerProtocol": endpoint.protocol,
            **settings,
        }
        if key is not None:
            overrides["RunPodApiKey"] = key
        settings_ = Settings.load(env={}, overrides=overrides)
        async with Orchestrator(settings_, telemetry=telemetry) as orch:
            yield World(emulator, emulator.endpoint(ENDPOINT), orch)


async def idled_out(endpoint: EmulatedEndpoint) -> list[EmulatedWorker]:
    """The workers still up once the endpoint's idle timeout (and a second) has passed.

    swarmpod releases a worker by cancelling its job; as on RunPod (runpod SDK >= 1.10, a
    per-job stop), the worker then idles out after the endpoint's idle timeout.
    """
    await anyio.sleep(endpoint.config.idle_timeout_s + 1.0)
    return endpoint.running_workers()


def state_of(worker: EmulatedWorker) -> WorkerState:
    """The worker's state as of now.

    Read through a call, so that a type checker does not keep the state an earlier
    ``assert worker.state is ...`` narrowed it to (the worker changes meanwhile).
    """
    return worker.state


def settings_for(emulator: Emulator, **overrides: Any) -> Settings:
    """Settings for endpoint ``ENDPOINT`` of ``emulator`` with key ``KEY``, plus ``overrides``."""
    return Settings.load(
        env={},
        overrides={
            "EndpointId": ENDPOINT,
            "RunPodBaseUrl": emulator.base_url,
            "RunPodApiKey": KEY,
            **overrides,
        },
    )


# --- helpers for the emulator's own tests (one endpoint "ep", key "test-key") -------------


@asynccontextmanager
async def emulated(config: EndpointConfig) -> AsyncIterator[tuple[Emulator, EmulatedEndpoint]]:
    """An emulator with one endpoint ``ep`` configured by ``config``."""
    async with Emulator(EmulatorConfig(endpoints={"ep": config})) as emulator:
        yield emulator, emulator.endpoint("ep")


async def until(condition: Callable[[], bool], *, within_s: float = 900.0) -> None:
    """Wait (loop time) until ``condition()`` holds; fail after ``within_s``."""
    with anyio.fail_after(within_s):
        while not condition():  # noqa: ASYNC110 (plain attributes, no event to wait on)
            await anyio.sleep(0.1)


async def run(emulator: Emulator, body: dict[str, Any]) -> str:
    """POST /run on endpoint ``ep``; returns the job id."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{emulator.base_url}/ep/run", json=body, headers={"Authorization": "test-key"}
        ) as response,
    ):
        assert response.status == 200
        job_id: str = (await response.json())["id"]
        return job_id

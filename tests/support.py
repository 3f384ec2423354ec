"""Test support: an emulator and an orchestrator wired together on real loopback HTTP."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from orchestrator import Orchestrator, ProgressEvent, Settings
from orchestrator.emulator import EmulatedEndpoint, Emulator, EmulatorConfig, EndpointConfig

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
    **settings: Any,
) -> AsyncIterator[World]:
    """Start an emulator with one endpoint and an orchestrator using ``settings``."""
    config = EmulatorConfig(
        endpoints={ENDPOINT: endpoint or EndpointConfig(cold_start_s=30.0)}, api_keys=(KEY,)
    )
    async with Emulator(config) as emulator:
        overrides: dict[str, Any] = {
            "EndpointId": ENDPOINT,
            "RunPodBaseUrl": emulator.base_url,
            "PollIntervalMs": 1000,
            **settings,
        }
        if key is not None:
            overrides["RunPodApiKey"] = key
        async with Orchestrator(Settings.load(env={}, overrides=overrides)) as orch:
            yield World(emulator, emulator.endpoint(ENDPOINT), orch)

"""An orchestrator on a fresh emulator endpoint, for benchmarks that time generations."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from observability import Telemetry
from orchestrator import Orchestrator, Settings
from orchestrator.emulator import Emulator, EmulatorConfig, EndpointConfig

__all__ = ["emulated_orchestrator"]

KEY = "bench-key"
ENDPOINT = "bench"


@contextlib.asynccontextmanager
async def emulated_orchestrator(
    endpoint: EndpointConfig, *, telemetry: Telemetry | None = None, **overrides: Any
) -> AsyncIterator[Orchestrator]:
    """An open orchestrator on endpoint ``bench`` of a new emulator (``overrides``: settings)."""
    config = EmulatorConfig(endpoints={ENDPOINT: endpoint}, api_keys=(KEY,))
    async with Emulator(config) as emulator:
        settings = Settings.load(
            env={},
            overrides={
                "EndpointId": ENDPOINT,
                "RunPodApiKey": KEY,
                "RunPodBaseUrl": emulator.base_url,
                "WorkerProtocol": endpoint.protocol,
                **overrides,
            },
        )
        async with Orchestrator(settings, telemetry=telemetry) as orch:
            yield orch

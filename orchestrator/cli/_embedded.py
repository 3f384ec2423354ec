"""The embedded emulator ``generate`` and ``demo`` start when no endpoint is configured."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Final

from ..emulator import Emulator, EmulatorConfig, EndpointConfig
from ..emulator.swarm import SwarmConfig
from ..secrets import Secret
from ..settings import Settings

__all__ = ["EMBEDDED_ENDPOINT", "EMBEDDED_KEY", "embedded_emulator_config", "embedded_settings"]

EMBEDDED_ENDPOINT: Final = "local-ep"
"""The embedded emulator's endpoint id (also ``swarmpod emulator``'s default)."""
EMBEDDED_KEY: Final = "emulator-key"
"""The embedded emulator's API key (also ``swarmpod emulator``'s default)."""


def embedded_emulator_config(*, cold_start_s: float) -> EmulatorConfig:
    """The emulator `generate` and `demo` start when no endpoint is configured."""
    endpoint = EndpointConfig(
        protocol="v2",
        cold_start_s=cold_start_s,
        queue_delay_s=0.5,
        idle_timeout_s=5.0,
        max_workers=3,
        swarm=SwarmConfig(seconds_per_step=0.02),
    )
    return EmulatorConfig(endpoints={EMBEDDED_ENDPOINT: endpoint}, api_keys=(EMBEDDED_KEY,))


@contextlib.asynccontextmanager
async def embedded_settings(base: Settings, *, cold_start_s: float) -> AsyncIterator[Settings]:
    """Start the embedded emulator and yield settings pointing at it."""
    config = embedded_emulator_config(cold_start_s=cold_start_s)
    endpoint = config.endpoints[EMBEDDED_ENDPOINT]
    async with Emulator(config) as emulator:
        yield base.replace(
            endpoint_id=EMBEDDED_ENDPOINT,
            runpod_api_key=Secret(EMBEDDED_KEY),
            runpod_base_url=emulator.base_url,
            poll_interval_ms=min(base.poll_interval_ms, 500),
            state_file=":memory:",  # the embedded emulator lives as long as this process
            worker_protocol="v2",  # the embedded image is known: leases
            endpoint_queue_delay_sec=endpoint.queue_delay_s,  # its billing, for cost attribution
            endpoint_idle_timeout_sec=endpoint.idle_timeout_s,
        )

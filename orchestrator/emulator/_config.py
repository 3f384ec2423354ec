"""Value objects that describe an emulated RunPod account: endpoints, keys, listening address."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from orchestrator.emulator.swarm import SwarmConfig

__all__ = ["EmulatorConfig", "EndpointConfig"]


@dataclass(frozen=True)
class EndpointConfig:
    """One emulated serverless endpoint (RunPod defaults, runpod-api.md §4.1; times in s).

    >>> EndpointConfig(max_workers=1, cold_start_s=90.0, idle_timeout_s=120.0).max_workers
    1

    Attributes:
        min_workers: always-on workers, started with the emulator and never idled out.
        max_workers: cap on live workers (unhealthy ones keep their slot).
        cold_start_s: container + SwarmUI start; ``math.inf`` = never ready.
        flashboot_start_s: start time of a worker revived shortly after another stopped
            (None = same as ``cold_start_s``).
        idle_timeout_s: a worker with no job for this long stops.
        queue_delay_s: the queue-delay scaler starts a worker once a job has waited this long
            and no idle worker exists.
        execution_timeout_s: default job execution timeout (``policy.executionTimeout`` wins).
        protocol: the worker protocol the workers speak.
        swarm: configuration of every worker's fake SwarmUI.
        boot_fails: the container crashes during start, so every worker becomes unhealthy.
    """

    min_workers: int = 0
    max_workers: int = 3
    cold_start_s: float = 60.0
    flashboot_start_s: float | None = None
    idle_timeout_s: float = 5.0
    queue_delay_s: float = 4.0
    execution_timeout_s: float = 600.0
    protocol: Literal["v1"] = "v1"
    swarm: SwarmConfig = field(default_factory=SwarmConfig)
    boot_fails: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.min_workers <= self.max_workers:
            raise ValueError("need 0 <= min_workers <= max_workers")
        times = (self.cold_start_s, self.idle_timeout_s, self.queue_delay_s)
        if any(math.isnan(t) or t < 0 for t in times):
            raise ValueError("cold_start_s, idle_timeout_s and queue_delay_s must be >= 0")
        if self.flashboot_start_s is not None and self.flashboot_start_s < 0:
            raise ValueError("flashboot_start_s must be >= 0")
        if self.execution_timeout_s <= 0:
            raise ValueError("execution_timeout_s must be > 0")
        if self.protocol != "v1":
            raise ValueError(f"unsupported worker protocol {self.protocol!r}")


def _default_endpoints() -> Mapping[str, EndpointConfig]:
    return {"local-ep": EndpointConfig()}


@dataclass(frozen=True)
class EmulatorConfig:
    """The emulated account: its endpoints by id, the accepted API keys, where to listen.

    >>> EmulatorConfig(endpoints={"ep": EndpointConfig(min_workers=1)}).port
    0

    Attributes:
        endpoints: endpoint id -> its configuration.
        api_keys: keys accepted as ``Authorization: Bearer K`` or a raw ``K``.
        host: listening address (keep it on loopback).
        port: listening port; 0 picks a free one (see ``Emulator.base_url``).
    """

    endpoints: Mapping[str, EndpointConfig] = field(default_factory=_default_endpoints)
    api_keys: tuple[str, ...] = ("test-key",)
    host: str = "127.0.0.1"
    port: int = 0

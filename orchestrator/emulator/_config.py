"""Value objects that describe an emulated RunPod account: endpoints, keys, listening address."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from orchestrator.emulator.swarm import SwarmConfig

from ._ratelimit import RateLimits

__all__ = ["HANDLER_PROTOCOL_ENV", "Duration", "EmulatorConfig", "EndpointConfig", "PolicyLimits"]

Duration = float | tuple[float, float]
"""A fixed time in seconds, or a ``(low, high)`` range drawn uniformly from the seeded RNG."""

HANDLER_PROTOCOL_ENV: frozenset[str] = frozenset(
    {
        "RUNPOD_POD_ID",
        "RUNPOD_ENDPOINT_ID",
        "RUNPOD_AI_API_KEY",
        "RUNPOD_WEBHOOK_GET_JOB",
        "RUNPOD_WEBHOOK_POST_OUTPUT",
        "RUNPOD_WEBHOOK_POST_STREAM",
        "RUNPOD_WEBHOOK_PING",
        "RUNPOD_PING_INTERVAL",
    }
)
"""Variables the emulator sets for every hosted worker process (runpod-api.md §6.3)."""


def _duration(value: object, name: str) -> Duration:
    if isinstance(value, list | tuple):
        if len(value) != 2:
            raise ValueError(f"{name} as a range needs exactly (low, high)")
        low, high = float(value[0]), float(value[1])
        if math.isnan(low) or math.isnan(high) or not 0 <= low <= high:
            raise ValueError(f"{name} range needs 0 <= low <= high")
        return (low, high)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"{name} must be a number of seconds or a (low, high) range")
    if math.isnan(value) or value < 0:
        raise ValueError(f"{name} must be >= 0")
    return float(value)


_WEEK_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True)
class PolicyLimits:
    """The bounds RunPod puts on a job's ``policy`` (ms, inclusive); a value outside gets 400.

    RunPod's documentation (send-requests, endpoint-configurations): ``executionTimeout``
    5 s to 7 days, ``ttl`` 10 s to 7 days (specs/runpod-api.md §2.1, §3). Tests that need a
    short timeout on the real clock may lower a bound; the default is RunPod's.

    >>> PolicyLimits().refusal("ttl", 1_000)
    'policy.ttl must be between 10000 and 604800000 ms, got 1000'

    Attributes:
        execution_timeout_ms: (lowest, highest) ``policy.executionTimeout``.
        ttl_ms: (lowest, highest) ``policy.ttl``.
    """

    execution_timeout_ms: tuple[int, int] = (5_000, _WEEK_MS)
    ttl_ms: tuple[int, int] = (10_000, _WEEK_MS)

    def refusal(self, name: str, value: int) -> str | None:
        """Why ``value`` of ``policy.<name>`` is refused, or None when it is within bounds."""
        low, high = self.execution_timeout_ms if name == "executionTimeout" else self.ttl_ms
        if low <= value <= high:
            return None
        return f"policy.{name} must be between {low} and {high} ms, got {value}"


@dataclass(frozen=True)
class EndpointConfig:
    """One emulated serverless endpoint (RunPod defaults, runpod-api.md §4.1; times in s).

    >>> EndpointConfig(max_workers=1, cold_start_s=90.0, idle_timeout_s=120.0).max_workers
    1

    Attributes:
        min_workers: always-on workers, started with the emulator and never idled out.
        max_workers: cap on live workers (unhealthy and throttled ones keep their slot).
        cold_start_s: container + SwarmUI start; ``math.inf`` = never ready; a
            ``(low, high)`` range draws each boot uniformly from the RNG seeded with ``seed``.
        flashboot_start_s: start time of a worker revived shortly after another stopped
            (None = same as ``cold_start_s``; a range is drawn like ``cold_start_s``).
        seed: seed of the RNG that draws ranged start times (same seed, same draws).
        idle_timeout_s: a worker with no job for this long stops.
        scaler: ``queue_delay`` (a job waiting ``queue_delay_s`` starts a worker) or
            ``request_count`` (target workers = ceil((inQueue + inProgress) / scaler_value)).
        queue_delay_s: the queue-delay scaler starts a worker once a job has waited this long
            and no idle worker exists.
        scaler_value: requests per worker of the request-count scaler (>= 1).
        execution_timeout_s: default job execution timeout (``policy.executionTimeout`` wins).
        protocol: the worker image the workers run: ``v1`` (HartsyAI wakeup/keepalive) or
            ``v2`` (leases), per specs/worker-protocols.md.
        swarm: configuration of every worker's fake SwarmUI.
        boot_fails: the container crashes during start, so every worker becomes unhealthy
            (and stays so).
        crash_loop: every worker crashes during its first ``crash_loop`` boots; it is
            unhealthy (not billed) for ``unhealthy_restart_s`` after each, then boots again.
        unhealthy_restart_s: how long a crash-looping worker stays unhealthy before a reboot.
        init_timeout_s: a boot longer than this marks the worker unhealthy (RunPod: 7 min,
            ``RUNPOD_INIT_TIMEOUT``); ``math.inf`` = never.
        capacity: host capacity, the most workers that can boot or run at once; a wanted worker
            beyond it waits THROTTLED (not billed). None = unlimited.
        run_retention_s: how long a finished ``/run`` job stays readable (then 404).
        runsync_retention_s: how long a finished ``/runsync`` job stays readable (then 404).
        webhook_retries: further webhook attempts after a delivery that did not get a 200.
        webhook_retry_delay_s: the pause between webhook attempts.
        rate_limits: per-route token buckets (HTTP 429 with ``Retry-After``); None = no limits.
        policy_limits: the accepted ranges of ``policy.executionTimeout`` and ``policy.ttl``.
        proxy_urls: workers report ``https://{worker_id}-7801.proxy.runpod.net`` as their
            public URL, as RunPod's proxy names them (runpod-api.md §4.6); a client reaches
            them through :meth:`Emulator.proxy_middleware`. False = ``http://127.0.0.1:PORT``.
        handler_command: argv of a user's own worker process, e.g. ``("python", "handler.py")``
            running ``runpod.serverless.start``; each worker runs one such process against the
            emulator's worker routes (runpod-api.md §6.3). None = the built-in image
            (``protocol`` then means nothing: the handler decides what a job does).
        handler_env: extra environment of the worker process (on top of the emulator's own,
            minus its ``RUNPOD_*`` variables); the protocol variables cannot be overridden.
        handler_cwd: working directory of the worker process (None = the emulator's).
        ping_interval_s: ``RUNPOD_PING_INTERVAL`` of a hosted worker (>= 1 s; the SDK pings
            every whole second of it).
        dead_after_missed_pings: a hosted worker without a ping for this many intervals is
            dead (unhealthy); ``math.inf`` = never.
        handler_stop_grace_s: a stopped worker process gets SIGTERM, then SIGKILL after this.
    """

    min_workers: int = 0
    max_workers: int = 3
    cold_start_s: Duration = 60.0
    flashboot_start_s: Duration | None = None
    seed: int = 0
    idle_timeout_s: float = 5.0
    scaler: Literal["queue_delay", "request_count"] = "queue_delay"
    queue_delay_s: float = 4.0
    scaler_value: int = 1
    execution_timeout_s: float = 600.0
    protocol: Literal["v1", "v2"] = "v1"
    swarm: SwarmConfig = field(default_factory=SwarmConfig)
    boot_fails: bool = False
    crash_loop: int = 0
    unhealthy_restart_s: float = 60.0
    init_timeout_s: float = 420.0
    capacity: int | None = None
    run_retention_s: float = 1800.0
    runsync_retention_s: float = 60.0
    webhook_retries: int = 2
    webhook_retry_delay_s: float = 10.0
    rate_limits: RateLimits | None = field(default_factory=RateLimits)
    policy_limits: PolicyLimits = field(default_factory=PolicyLimits)
    proxy_urls: bool = False
    handler_command: tuple[str, ...] | None = None
    handler_env: Mapping[str, str] = field(default_factory=dict, hash=False)
    handler_cwd: str | None = None
    ping_interval_s: float = 10.0
    dead_after_missed_pings: float = 3.0
    handler_stop_grace_s: float = 10.0

    def __post_init__(self) -> None:
        if not 0 <= self.min_workers <= self.max_workers:
            raise ValueError("need 0 <= min_workers <= max_workers")
        object.__setattr__(self, "cold_start_s", _duration(self.cold_start_s, "cold_start_s"))
        if self.flashboot_start_s is not None:
            flashboot = _duration(self.flashboot_start_s, "flashboot_start_s")
            object.__setattr__(self, "flashboot_start_s", flashboot)
        times = (
            self.idle_timeout_s,
            self.queue_delay_s,
            self.unhealthy_restart_s,
            self.init_timeout_s,
            self.run_retention_s,
            self.runsync_retention_s,
            self.webhook_retry_delay_s,
        )
        if any(math.isnan(t) or t < 0 for t in times):
            raise ValueError(
                "idle_timeout_s, queue_delay_s, unhealthy_restart_s, init_timeout_s, "
                "retention and webhook delay times must be >= 0"
            )
        if self.execution_timeout_s <= 0:
            raise ValueError("execution_timeout_s must be > 0")
        if self.protocol not in ("v1", "v2"):
            raise ValueError(f"unsupported worker protocol {self.protocol!r}")
        if self.scaler not in ("queue_delay", "request_count"):
            raise ValueError(f"unknown scaler {self.scaler!r}")
        if self.scaler_value < 1:
            raise ValueError("scaler_value must be >= 1")
        if self.crash_loop < 0 or self.webhook_retries < 0:
            raise ValueError("crash_loop and webhook_retries must be >= 0")
        if self.capacity is not None and self.capacity < 0:
            raise ValueError("capacity must be >= 0 (or None for unlimited)")
        self._check_handler()

    def _check_handler(self) -> None:
        if self.handler_command is not None:
            command = tuple(str(arg) for arg in self.handler_command)
            if not command:
                raise ValueError("handler_command needs at least the program to run")
            object.__setattr__(self, "handler_command", command)
        if self.handler_cwd is not None:
            object.__setattr__(self, "handler_cwd", os.fspath(self.handler_cwd))
        object.__setattr__(self, "handler_env", dict(self.handler_env))  # a copy of its own
        reserved = sorted(set(self.handler_env) & HANDLER_PROTOCOL_ENV)
        if reserved:
            raise ValueError(f"handler_env cannot set the protocol variables {reserved}")
        if math.isnan(self.ping_interval_s) or self.ping_interval_s < 1:
            raise ValueError("ping_interval_s must be >= 1 (the SDK pings in whole seconds)")
        if math.isnan(self.dead_after_missed_pings) or self.dead_after_missed_pings <= 0:
            raise ValueError("dead_after_missed_pings must be > 0")
        if math.isnan(self.handler_stop_grace_s) or self.handler_stop_grace_s < 0:
            raise ValueError("handler_stop_grace_s must be >= 0")


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

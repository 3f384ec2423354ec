"""The metrics of swarmpod (OpenTelemetry metrics API), made once per :class:`Telemetry`."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from opentelemetry.metrics import CallbackOptions, Meter, Observation

__all__ = ["Instruments", "PoolReading"]


@dataclass(frozen=True)
class PoolReading:
    """What one orchestrator holds right now (read by the gauges at each collection)."""

    endpoint_id: str
    warm_workers: int
    queue_depth: int


class Instruments:
    """Histograms, counters and gauges; see each attribute for its name and unit.

    Attributes:
        cold_start: ``swarmpod.cold_start.duration`` (s), worker asked for → ready.
        generation: ``swarmpod.generation.duration`` (s), by ``outcome`` and ``model``.
        api_calls: ``swarmpod.runpod.api_calls``, by ``route`` and ``status``.
        gpu_seconds: ``swarmpod.gpu_seconds`` (s), by ``phase`` (boot / execution /
            idle_tail / unattributed), ``user`` and ``model``.
        cost: ``swarmpod.cost`` (USD), by ``user`` and ``model``.
        gauges ``swarmpod.workers.warm`` and ``swarmpod.queue.depth`` read every registered
        pool (:meth:`watch`).
    """

    def __init__(self, meter: Meter) -> None:
        self.cold_start = meter.create_histogram(
            "swarmpod.cold_start.duration", unit="s", description="worker asked for → ready"
        )
        self.generation = meter.create_histogram(
            "swarmpod.generation.duration", unit="s", description="submission → final state"
        )
        self.api_calls = meter.create_counter(
            "swarmpod.runpod.api_calls", description="RunPod API calls by route and status"
        )
        self.gpu_seconds = meter.create_counter(
            "swarmpod.gpu_seconds", unit="s", description="attributed GPU-seconds by phase"
        )
        self.cost = meter.create_counter("swarmpod.cost", unit="USD", description="attributed cost")
        self._lock = threading.Lock()
        self._pools: list[Callable[[], PoolReading]] = []
        meter.create_observable_gauge(
            "swarmpod.workers.warm",
            callbacks=[self._observe(lambda r: r.warm_workers)],
            description="workers held warm (free or busy)",
        )
        meter.create_observable_gauge(
            "swarmpod.queue.depth",
            callbacks=[self._observe(lambda r: r.queue_depth)],
            description="generations waiting for a worker or a slot",
        )

    def watch(self, read: Callable[[], PoolReading]) -> Callable[[], None]:
        """Let the gauges read a pool; returns the function that stops it."""
        with self._lock:
            self._pools.append(read)

        def unwatch() -> None:
            with self._lock:
                if read in self._pools:
                    self._pools.remove(read)

        return unwatch

    def _observe(
        self, value: Callable[[PoolReading], int]
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            with self._lock:
                readers = list(self._pools)
            for read in readers:
                try:  # read from the exporter's thread while the loop may change the pool
                    reading = read()
                except RuntimeError:
                    continue  # a dict resized mid-read: the next collection reads it
                yield Observation(value(reading), {"endpoint": reading.endpoint_id})

        return callback

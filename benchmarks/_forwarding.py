"""How long swarmpod takes to forward a generation to a warm worker, in real (wall) time.

Plain asyncio loop (no looptime): the emulator on loopback, a v2 endpoint whose worker boots in
0.2 s and generates at once. One cold generation warms a lease; then, for each sample, the
clock starts when ``Orchestrator.generate`` is called and stops when

- ``received``: the worker's fake SwarmUI has taken the generation request in (its
  ``generations_started`` counter moved; a watcher task woken by the fake's activity signal
  reads ``time.perf_counter()``, so the figure includes one event-loop hop), or
- ``forwarded``: the orchestrator reports that the request went out to the worker's SwarmUI
  (the progress event with ``detail["forwarded"]``, right after the WebSocket message was
  written): the goal's "request to forwarding", or
- ``generating``: the orchestrator reports the GENERATING stage (``on_progress``), just
  before it opens the WebSocket.

The fake SwarmUI runs on the same loop as swarmpod here, so ``received`` also counts its own
WebSocket handshake and parsing, which a real worker does on its own machine.

Medians over the samples are reported (the first few warm generations are dropped as warm-up).
"""

from __future__ import annotations

import gc
import statistics
import time
from dataclasses import dataclass
from typing import Any, Final

import anyio
from anyio.lowlevel import checkpoint

from orchestrator import Orchestrator, ProgressEvent, Settings, Stage
from orchestrator.emulator import Emulator, EmulatorConfig, EndpointConfig
from orchestrator.emulator.swarm import FakeSwarmUI, SwarmConfig

__all__ = ["Forwarding", "measure_forwarding"]

_ENDPOINT: Final = "forwarding"
_KEY: Final = "bench-key"
_WARMUP: Final = 5
_PARAMS: Final[dict[str, Any]] = {"prompt": "forwarding", "width": 64, "height": 64, "steps": 1}


@dataclass(frozen=True)
class Forwarding:
    """Medians of the forwarding time of warm generations, in milliseconds.

    Attributes:
        samples: warm generations measured.
        received_ms: call of ``generate`` -> the fake SwarmUI took the request in.
        forwarded_ms: call of ``generate`` -> the request was written to the worker.
        generating_ms: call of ``generate`` -> the GENERATING progress event.
        total_ms: call of ``generate`` -> its result (the whole warm generation).
    """

    samples: int
    received_ms: float
    forwarded_ms: float
    generating_ms: float
    total_ms: float


async def _received(swarm: FakeSwarmUI, stamps: list[float]) -> None:
    before = swarm.generations_started
    while swarm.generations_started == before:
        await swarm.wait_for_activity()
    stamps.append(time.perf_counter())


async def _measure(samples: int) -> Forwarding:
    endpoint = EndpointConfig(
        protocol="v2",
        cold_start_s=0.2,
        queue_delay_s=0.0,  # RunPod's scaler waits 4 s; no need to sit through it here
        max_workers=1,
        swarm=SwarmConfig(seconds_per_step=0.0, progress_updates=1),
    )
    config = EmulatorConfig(endpoints={_ENDPOINT: endpoint}, api_keys=(_KEY,))
    async with Emulator(config) as emulator:
        settings = Settings.load(
            env={},
            overrides={
                "EndpointId": _ENDPOINT,
                "RunPodBaseUrl": emulator.base_url,
                "RunPodApiKey": _KEY,
                "WorkerProtocol": "v2",
                "IdleTimeoutSec": 600,
                "MaxWorkers": 1,
                "StateFile": ":memory:",
            },
        )
        async with Orchestrator(settings) as orch:
            await orch.generate(_PARAMS, images=1)  # the cold start: a lease, kept warm
            (worker,) = emulator.endpoint(_ENDPOINT).running_workers()
            gc.collect()  # start from a clean heap; collections during the samples still count
            received: list[float] = []
            generating: list[float] = []
            forwarded: list[float] = []
            total: list[float] = []
            for index in range(_WARMUP + samples):
                stamps: list[float] = []
                marks: list[float] = []
                sent: list[float] = []

                def on_progress(
                    event: ProgressEvent, marks: list[float] = marks, sent: list[float] = sent
                ) -> None:
                    if event.stage is Stage.GENERATING and not marks:
                        marks.append(time.perf_counter())
                    if "forwarded" in event.detail and not sent:
                        sent.append(time.perf_counter())

                async with anyio.create_task_group() as group:
                    group.start_soon(_received, worker.swarm, stamps)
                    await checkpoint()  # let the watcher start waiting
                    started = time.perf_counter()
                    result = await orch.generate(
                        {**_PARAMS, "seed": index}, images=1, on_progress=on_progress
                    )
                    ended = time.perf_counter()
                if result.cold_start:
                    raise RuntimeError("a warm sample found no warm worker")
                if index >= _WARMUP:
                    received.append(stamps[0] - started)
                    generating.append(marks[0] - started)
                    forwarded.append(sent[0] - started)
                    total.append(ended - started)
    return Forwarding(
        samples=samples,
        received_ms=statistics.median(received) * 1000,
        generating_ms=statistics.median(generating) * 1000,
        forwarded_ms=statistics.median(forwarded) * 1000,
        total_ms=statistics.median(total) * 1000,
    )


def measure_forwarding(samples: int = 50) -> Forwarding:
    """Measure ``samples`` warm generations on a plain asyncio loop (real time)."""
    if samples < 1:
        raise ValueError("samples must be >= 1")
    return anyio.run(_measure, samples)

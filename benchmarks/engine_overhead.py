"""What one generation costs swarmpod itself, per transport, on the emulator in virtual time.

Each round runs the same generations over WebSocket and over HTTP, interleaved, on a looptime
loop: the emulated cold start (90 s) and generation time cost no wall time, so the wall and
CPU seconds measured are swarmpod's own work plus the emulator's (HTTP, JSON, PNG encode and
decode). Reported as medians and as the WS/HTTP ratio.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import anyio
import looptime

from orchestrator.emulator import EndpointConfig

from ._emulated import emulated_orchestrator

ROUNDS = 5
GENERATIONS = 4
PARAMS: dict[str, Any] = {"prompt": "a lighthouse", "width": 512, "height": 512, "steps": 20}


async def _run(transport: str) -> tuple[float, float, float]:
    """(wall s, CPU s, virtual s) per generation for ``GENERATIONS`` sequential generations."""
    async with emulated_orchestrator(
        EndpointConfig(cold_start_s=90.0), Transport=transport
    ) as orch:
        wall, cpu, virtual = time.perf_counter(), time.process_time(), anyio.current_time()
        for _ in range(GENERATIONS):
            await orch.generate(PARAMS, images=2)
        return (
            (time.perf_counter() - wall) / GENERATIONS,
            (time.process_time() - cpu) / GENERATIONS,
            (anyio.current_time() - virtual) / GENERATIONS,
        )


def _measure(transport: str) -> tuple[float, float, float]:
    return anyio.run(_run, transport, backend_options={"loop_factory": looptime.new_event_loop})


def main() -> None:
    """Run the rounds side by side and print the table."""
    samples: dict[str, list[tuple[float, float, float]]] = {"ws": [], "http": []}
    for _ in range(ROUNDS):
        for transport in ("ws", "http"):
            samples[transport].append(_measure(transport))
    print(f"engine overhead per generation (2 images 512², {ROUNDS} rounds x {GENERATIONS})")
    print(f"{'transport':<10}{'wall ms':>10}{'CPU ms':>10}{'virtual s':>12}{'speed-up':>12}")
    medians = {}
    for transport, rows in samples.items():
        wall = statistics.median(row[0] for row in rows)
        cpu = statistics.median(row[1] for row in rows)
        virtual = statistics.median(row[2] for row in rows)
        medians[transport] = cpu
        print(
            f"{transport:<10}{wall * 1000:>10.1f}{cpu * 1000:>10.1f}{virtual:>12.1f}"
            f"{virtual / wall:>11.0f}x"
        )
    print(f"CPU ratio ws/http: {medians['ws'] / medians['http']:.2f}")


if __name__ == "__main__":
    main()

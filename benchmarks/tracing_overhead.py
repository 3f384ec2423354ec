"""What tracing costs: per-generation CPU time with tracing on vs off, side by side.

Each round runs the same generations twice on a looptime loop against the emulator, once with
tracing off (no providers: every span is a no-op) and once on (spans to a JSON-lines trace file
through the batch processor, metrics to an in-memory reader), in alternating order. Images are
small (64², 2 per generation) so the emulator's PNG work does not hide swarmpod's own. CPU time
is the whole process's (the exporter's thread included). Goal: on/off ≤ 1.05.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import looptime

from observability import Telemetry
from orchestrator.emulator import EndpointConfig

from ._emulated import emulated_orchestrator

ROUNDS = 7
GENERATIONS = 30
PARAMS: dict[str, Any] = {"prompt": "a lighthouse", "width": 64, "height": 64, "steps": 4}
GOAL = 1.05


async def _run(telemetry: Telemetry | None) -> float:
    """CPU seconds per warm generation (after one cold start that is not counted)."""
    endpoint = EndpointConfig(protocol="v2", cold_start_s=60.0)
    async with emulated_orchestrator(endpoint, telemetry=telemetry, StateFile=":memory:") as orch:
        await orch.generate(PARAMS, images=2)
        cpu = time.process_time()
        for _ in range(GENERATIONS):
            await orch.generate(PARAMS, images=2)
        spent = time.process_time() - cpu
    return spent / GENERATIONS


def _measure(traced: bool, directory: Path) -> float:
    telemetry = None
    if traced:
        telemetry = Telemetry.configure(otlp=False, trace_file=directory / "bench.jsonl")
    try:
        return anyio.run(_run, telemetry, backend_options={"loop_factory": looptime.new_event_loop})
    finally:
        if telemetry is not None:
            telemetry.shutdown()


def main() -> None:
    """Run the rounds side by side and print the table and the ratio."""
    samples: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        _measure(True, directory)  # warm-up: imports, first-use caches
        for round_ in range(ROUNDS):
            order = (False, True) if round_ % 2 == 0 else (True, False)
            for traced in order:
                samples[traced].append(_measure(traced, directory))
    off = statistics.median(samples[False])
    on = statistics.median(samples[True])
    print(f"tracing overhead per warm generation ({ROUNDS} rounds x {GENERATIONS}, 2 images 64²)")
    print(f"{'tracing':<10}{'CPU ms (median)':>18}{'min':>10}{'max':>10}")
    for traced, label in ((False, "off"), (True, "on")):
        rows = samples[traced]
        print(
            f"{label:<10}{statistics.median(rows) * 1000:>18.2f}"
            f"{min(rows) * 1000:>10.2f}{max(rows) * 1000:>10.2f}"
        )
    ratio = on / off
    verdict = "met" if ratio <= GOAL else "missed"
    print(f"CPU ratio on/off: {ratio:.3f} (goal <= {GOAL}: {verdict})")


if __name__ == "__main__":
    main()

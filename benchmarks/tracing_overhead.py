"""What tracing costs: per-generation CPU time with tracing on vs off, side by side.

Two orchestrators run in one process on one looptime loop, each against its own emulator: one
with tracing off (no providers: every span is a no-op), one with tracing on (spans to a
JSON-lines trace file through the batch processor, metrics to an in-memory reader). They
generate in turns, so both see the same machine state. Each generation is charged the CPU time
of the event loop's thread while it ran (the emulators' work included: it is the same for
both); the traced one is also charged, in total, the CPU time of the exporter's thread, which
encodes and writes the spans (flushed at the end). Two workloads: the demo's (2 images 512²,
20 steps: a progress event per step) and a stress case (2 images 64², 4 steps) where the
emulator's PNG work is small, so swarmpod's own share is largest. A fixed seed gives both
sides the same images (the emulator's PNG work varies with their content). Goal: on/off ≤ 1.05.
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import looptime

from observability import Telemetry
from orchestrator import Orchestrator
from orchestrator.emulator import EndpointConfig

from ._emulated import emulated_orchestrator

GOAL = 1.05
ROUNDS = 7
WORKLOADS: dict[str, tuple[dict[str, Any], int]] = {
    "512² x2, 20 steps": (
        {"prompt": "a lighthouse", "width": 512, "height": 512, "steps": 20, "seed": 7},
        30,
    ),
    "64² x2, 4 steps": (
        {"prompt": "a lighthouse", "width": 64, "height": 64, "steps": 4, "seed": 7},
        100,
    ),
}


def _thread_cpu(name: str) -> float:
    """CPU seconds used so far by the live thread called ``name`` (0 if there is none)."""
    for thread in threading.enumerate():
        if thread.name == name and thread.ident is not None:
            return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
    return 0.0


async def _side_by_side(
    params: dict[str, Any], generations: int, trace_file: Path
) -> tuple[float, float]:
    """(off, on) CPU seconds per warm generation, generating in turns."""
    telemetry = Telemetry.configure(otlp=False, trace_file=trace_file)
    endpoint = EndpointConfig(protocol="v2", cold_start_s=60.0)
    spent = {False: 0.0, True: 0.0}
    try:
        async with contextlib.AsyncExitStack() as stack:
            orchs: dict[bool, Orchestrator] = {}
            for traced in (False, True):
                orchs[traced] = await stack.enter_async_context(
                    emulated_orchestrator(
                        endpoint,
                        telemetry=telemetry if traced else None,
                        StateFile=":memory:",
                        IdleTimeoutSec=3600,  # both workers stay warm while the other runs
                    )
                )
                await orchs[traced].generate(params, images=2)  # the cold start: not counted
            telemetry.flush()
            exporter = _thread_cpu("OtelBatchSpanRecordProcessor")
            for index in range(generations):
                for traced in (False, True) if index % 2 == 0 else (True, False):
                    cpu = time.thread_time()
                    await orchs[traced].generate(params, images=2)
                    spent[traced] += time.thread_time() - cpu
            cpu = time.thread_time()
            telemetry.flush()
            spent[True] += time.thread_time() - cpu
            spent[True] += _thread_cpu("OtelBatchSpanRecordProcessor") - exporter
    finally:
        telemetry.shutdown()
    return spent[False] / generations, spent[True] / generations


def main() -> None:
    """Run the workloads and print the table and the ratios."""
    print(f"tracing overhead: CPU ms per warm generation, median of {ROUNDS} runs side by side")
    print(f"{'workload':<20}{'gens':>6}{'off':>10}{'on':>10}{'on/off':>9}  goal <= {GOAL}")
    with tempfile.TemporaryDirectory() as scratch:
        trace_file = Path(scratch) / "bench.jsonl"
        for name, (params, generations) in WORKLOADS.items():
            runs = [
                anyio.run(
                    _side_by_side,
                    params,
                    generations,
                    trace_file,
                    backend_options={"loop_factory": looptime.new_event_loop},
                )
                for _ in range(ROUNDS)
            ]
            off = statistics.median(run[0] for run in runs)
            on = statistics.median(run[1] for run in runs)
            ratio = statistics.median(run[1] / run[0] for run in runs)
            verdict = "met" if ratio <= GOAL else "missed"
            print(
                f"{name:<20}{generations:>6}{off * 1000:>10.2f}{on * 1000:>10.2f}"
                f"{ratio:>9.3f}  {verdict}"
            )


if __name__ == "__main__":
    main()

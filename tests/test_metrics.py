"""Metrics through the OpenTelemetry metrics API: histograms, counters and gauges."""

from __future__ import annotations

from typing import Any

import pytest
from support import world

from observability import Telemetry
from orchestrator.emulator import EndpointConfig

MODEL = "OfficialStableDiffusion/sd_xl_base_1.0.safetensors"
PARAMS = {"prompt": "a lighthouse", "model": MODEL, "steps": 4}
pytestmark = pytest.mark.anyio


def points(telemetry: Telemetry) -> dict[str, list[Any]]:
    assert telemetry.metric_reader is not None
    data = telemetry.metric_reader.get_metrics_data()
    found: dict[str, list[Any]] = {}
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


async def test_generations_record_cold_starts_durations_calls_and_cost() -> None:
    telemetry = Telemetry.configure(in_memory=True, otlp=False)
    async with world(EndpointConfig(protocol="v2", cold_start_s=60.0), telemetry=telemetry) as w:
        first = await w.orch.generate(PARAMS, user="ann")
        await w.orch.generate(PARAMS, user="ann")
        during = points(telemetry)
    after = points(telemetry)
    telemetry.shutdown()

    (cold,) = after["swarmpod.cold_start.duration"]
    assert cold.count == 1 and cold.sum == pytest.approx(first.timings.startup)
    (generations,) = after["swarmpod.generation.duration"]
    assert generations.count == 2 and dict(generations.attributes)["outcome"] == "succeeded"
    calls = {
        (p.attributes["route"], p.attributes["status"]): p.value
        for p in after["swarmpod.runpod.api_calls"]
    }
    assert calls[("run", "200")] == 1
    assert calls[("cancel", "200")] == 1
    seconds = {p.attributes["phase"]: p.value for p in after["swarmpod.gpu_seconds"]}
    assert seconds["boot"] > 50 and seconds["execution"] > 0
    (cost,) = after["swarmpod.cost"]
    assert dict(cost.attributes) == {"user": "ann", "model": MODEL}
    assert cost.value == pytest.approx(sum(seconds.values()) * 0.69 / 3600)
    (warm,) = during["swarmpod.workers.warm"]
    assert warm.value == 1
    assert "swarmpod.queue.depth" in during

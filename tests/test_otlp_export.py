"""OTLP/HTTP protobuf export, decoded by a real receiver on a local port.

The receiver (aiohttp, in its own thread) parses what the exporter sent with the protobuf
classes of ``opentelemetry-proto``; the exporter finds it through the standard
``OTEL_EXPORTER_OTLP_ENDPOINT`` variable, as it would find Jaeger on :4318.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from otlp_receiver import OtlpReceiver
from support import world

from observability import Telemetry
from orchestrator import GenerationFailedError
from orchestrator.emulator import EndpointConfig

MODEL = "OfficialStableDiffusion/sd_xl_base_1.0.safetensors"
PARAMS = {"prompt": "a lighthouse", "model": MODEL, "steps": 4}
V2 = EndpointConfig(protocol="v2", cold_start_s=75.0)
pytestmark = pytest.mark.anyio


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        yield receiver


def value(any_value: AnyValue) -> object:
    return getattr(any_value, any_value.WhichOneof("value") or "string_value")


def attributes(span: Span) -> dict[str, object]:
    return {item.key: value(item.value) for item in span.attributes}


def phases_under(spans: list[Span], root: Span) -> list[Span]:
    below = [s for s in spans if s.parent_span_id == root.span_id and s.trace_id == root.trace_id]
    return sorted(
        (s for s in below if "swarmpod.phase" in attributes(s)),
        key=lambda s: (s.start_time_unix_nano, s.end_time_unix_nano),
    )


async def test_a_cold_start_arrives_as_a_root_and_its_state_spans_in_order(
    receiver: OtlpReceiver,
) -> None:
    telemetry = Telemetry.configure()  # OTLP from the environment variable
    async with world(V2, telemetry=telemetry) as w:
        result = await w.orch.generate(PARAMS, images=2)
    telemetry.shutdown()  # flushes: the last spans are sent, not lost

    assert receiver.content_types and set(receiver.content_types) == {"application/x-protobuf"}
    spans = list(receiver.spans())
    (root,) = [s for s in spans if s.name.startswith("Generation:")]
    assert root.parent_span_id == b""
    states = phases_under(spans, root)
    assert [attributes(s)["swarmpod.phase"] for s in states] == list(result.path)
    assert [s.name for s in states][1:3] == ["Waking:runpod", "Polling:runpod"]
    for state in states:
        assert state.start_time_unix_nano >= root.start_time_unix_nano
        assert state.end_time_unix_nano <= root.end_time_unix_nano
    polling = next(s for s in states if s.name == "Polling:runpod")
    assert (polling.end_time_unix_nano - polling.start_time_unix_nano) / 1e9 > 60
    facts = attributes(root)
    assert facts["swarmpod.cold_start"] is True
    assert facts["swarmpod.worker.id"] == result.worker_id
    assert facts["swarmpod.lease.id"] == result.job_ids[0]
    assert facts["swarmpod.images"] == 2
    assert facts["swarmpod.generation.id"] == result.generation_id
    assert root.status.code != Status.STATUS_CODE_ERROR
    (cost,) = [s for s in spans if s.name == "Cost:generation"]
    assert cost.trace_id == root.trace_id and cost.parent_span_id == root.span_id
    assert attributes(cost)["swarmpod.gpu_seconds.boot"] == pytest.approx(
        result.cost.boot_s if result.cost else 0
    )
    assert any(s.name.startswith("Lease:") for s in spans)
    resource = receiver.traces[0].resource_spans[0].resource
    assert {a.key: value(a.value) for a in resource.attributes}["service.name"] == "swarmpod"


async def test_a_failed_generation_arrives_with_status_error_and_its_phase(
    receiver: OtlpReceiver,
) -> None:
    telemetry = Telemetry.configure()
    async with world(V2, telemetry=telemetry) as w:
        w.endpoint.swarm_faults.generation_error("CUDA out of memory")
        with pytest.raises(GenerationFailedError):
            await w.orch.generate(PARAMS)
    telemetry.shutdown()

    spans = list(receiver.spans())
    (root,) = [s for s in spans if s.name.startswith("Generation:")]
    assert root.status.code == Status.STATUS_CODE_ERROR
    assert attributes(root)["error.phase"] == "generating"
    assert attributes(root)["error.type"] == "GenerationFailedError"
    assert [s.name for s in phases_under(spans, root)][-1] == "Failed"


async def test_metrics_arrive_too(receiver: OtlpReceiver) -> None:
    telemetry = Telemetry.configure()
    async with world(V2, telemetry=telemetry) as w:
        await w.orch.generate(PARAMS)
    telemetry.shutdown()

    names = {
        metric.name
        for request in receiver.metrics
        for resource in request.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    assert {
        "swarmpod.cold_start.duration",
        "swarmpod.generation.duration",
        "swarmpod.runpod.api_calls",
        "swarmpod.gpu_seconds",
    } <= names

"""Every generation is one trace: a root span, one child per chart state, events inside.

In virtual time against the emulator, with the in-memory exporter of a real OpenTelemetry SDK.
"""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode
from support import world

from observability import Telemetry
from orchestrator import GenerationFailedError, WorkerNotReadyError
from orchestrator.emulator import EndpointConfig

V2 = EndpointConfig(protocol="v2", cold_start_s=60.0)
V1 = EndpointConfig(protocol="v1", cold_start_s=60.0)
MODEL = "OfficialStableDiffusion/sd_xl_base_1.0.safetensors"
PARAMS = {"prompt": "a lighthouse", "model": MODEL, "steps": 4}
pytestmark = pytest.mark.anyio


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    telemetry = Telemetry.configure(in_memory=True, otlp=False)
    yield telemetry
    telemetry.shutdown()


def roots(telemetry: Telemetry, prefix: str) -> list[ReadableSpan]:
    return [
        span
        for span in telemetry.finished_spans()
        if span.name.startswith(prefix) and span.parent is None
    ]


def children(telemetry: Telemetry, parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    found = [
        span
        for span in telemetry.finished_spans()
        if span.parent is not None and span.parent.span_id == parent.context.span_id
    ]
    return sorted(found, key=lambda span: (span.start_time or 0, span.end_time or 0))


def number(value: object) -> float:
    """A numeric span attribute (fails on any other kind)."""
    assert isinstance(value, int | float), value
    return float(value)


def phase_children(telemetry: Telemetry, parent: ReadableSpan) -> list[ReadableSpan]:
    return [s for s in children(telemetry, parent) if "swarmpod.phase" in (s.attributes or {})]


async def test_a_cold_start_is_one_root_span_with_one_child_per_state_in_order(
    telemetry: Telemetry,
) -> None:
    async with world(V2, telemetry=telemetry) as w:
        result = await w.orch.generate(PARAMS, images=2)

    (root,) = roots(telemetry, "Generation:")
    assert root.name == f"Generation:{MODEL}"
    states = phase_children(telemetry, root)
    assert [s.attributes["swarmpod.phase"] for s in states if s.attributes] == list(result.path)
    assert [s.name for s in states] == [
        "Idle",
        "Waking:runpod",
        "Polling:runpod",
        f"Ready:{result.worker_id}",
        f"Generating:{MODEL}",
        "ShuttingDown",
        "Done",
    ]
    assert root.context is not None
    for state in states:
        assert state.context is not None and state.parent is not None
        assert state.context.trace_id == root.context.trace_id
    attributes = root.attributes or {}
    assert attributes["swarmpod.cold_start"] is True
    assert attributes["swarmpod.worker.id"] == result.worker_id
    assert attributes["swarmpod.lease.id"] == result.job_ids[0]
    assert attributes["swarmpod.runpod.job_id"] == result.job_ids[0]
    assert attributes["swarmpod.images"] == 2
    assert attributes["swarmpod.outcome"] == "succeeded"
    assert attributes["swarmpod.generation.id"] == result.generation_id
    assert attributes["swarmpod.startup_s"] == pytest.approx(result.timings.startup)
    assert root.status.status_code is not StatusCode.ERROR


async def test_state_spans_last_as_long_as_the_chart_stayed_in_each_state(
    telemetry: Telemetry,
) -> None:
    async with world(V2, telemetry=telemetry) as w:
        result = await w.orch.generate(PARAMS)

    (root,) = roots(telemetry, "Generation:")
    spans = {
        s.attributes["swarmpod.phase"]: s for s in phase_children(telemetry, root) if s.attributes
    }
    polling = spans["Polling"]
    assert polling.end_time is not None and polling.start_time is not None
    assert (polling.end_time - polling.start_time) / 1e9 == pytest.approx(
        result.timings.polling, abs=0.01
    )
    assert result.timings.polling > 50  # the 60 s cold start, in virtual time
    done = spans["Done"]
    assert done.start_time == done.end_time  # final states end on entry
    assert root.start_time is not None and root.end_time is not None
    assert (root.end_time - root.start_time) / 1e9 == pytest.approx(result.timings.total, abs=0.01)


async def test_a_warm_generation_skips_waking_and_polling(telemetry: Telemetry) -> None:
    async with world(V2, telemetry=telemetry) as w:
        await w.orch.generate(PARAMS)
        warm = await w.orch.generate(PARAMS)

    assert warm.cold_start is False
    second = max(roots(telemetry, "Generation:"), key=lambda s: s.start_time or 0)
    names = [s.name.split(":")[0] for s in phase_children(telemetry, second)]
    assert names == ["Idle", "Ready", "Generating", "ShuttingDown", "Done"]
    assert (second.attributes or {})["swarmpod.cold_start"] is False


async def test_progress_updates_and_runpod_polls_are_span_events(telemetry: Telemetry) -> None:
    async with world(V1, telemetry=telemetry) as w:
        await w.orch.generate(PARAMS, images=2)

    (root,) = roots(telemetry, "Generation:")
    states = {s.name.split(":")[0]: s for s in phase_children(telemetry, root)}
    generating = [event.name for event in states["Generating"].events]
    assert generating.count("generating") >= 3  # forwarded, steps, images
    polling = [event.name for event in states["Polling"].events]
    assert "booting" in polling
    (worker,) = roots(telemetry, "Worker:")
    calls = [event.name for event in worker.events]
    assert "runpod.run" in calls and "runpod.status" in calls


async def test_a_failed_generation_has_status_error_with_its_type_and_phase(
    telemetry: Telemetry,
) -> None:
    async with world(V2, telemetry=telemetry) as w:
        w.endpoint.swarm_faults.generation_error("CUDA out of memory")
        with pytest.raises(GenerationFailedError):
            await w.orch.generate(PARAMS)

    (root,) = roots(telemetry, "Generation:")
    assert root.status.status_code is StatusCode.ERROR
    attributes = root.attributes or {}
    assert attributes["error.type"] == "GenerationFailedError"
    assert attributes["error.phase"] == "generating"
    assert attributes["swarmpod.outcome"] == "failed"
    assert [s.name for s in phase_children(telemetry, root)][-1] == "Failed"


async def test_a_startup_timeout_fails_in_polling(telemetry: Telemetry) -> None:
    never = EndpointConfig(protocol="v2", cold_start_s=10_000.0, init_timeout_s=20_000.0)
    async with world(never, telemetry=telemetry, StartupTimeoutSec=30) as w:
        with pytest.raises(WorkerNotReadyError):
            await w.orch.generate(PARAMS)

    (root,) = roots(telemetry, "Generation:")
    assert (root.attributes or {})["error.phase"] == "polling"
    assert telemetry.open_spans() == []


async def test_a_cancelled_generation_ends_every_span(telemetry: Telemetry) -> None:
    async with world(V2, telemetry=telemetry) as w:
        with anyio.move_on_after(20):
            await w.orch.generate(PARAMS)

    (root,) = roots(telemetry, "Generation:")
    assert (root.attributes or {})["swarmpod.outcome"] == "cancelled"
    assert [s.name for s in phase_children(telemetry, root)][-1] == "Cancelled"
    assert telemetry.open_spans() == []


async def test_each_lease_is_its_own_trace_with_a_span_per_lease_state(
    telemetry: Telemetry,
) -> None:
    async with world(V2, telemetry=telemetry) as w:
        result = await w.orch.generate(PARAMS)

    (lease,) = roots(telemetry, "Lease:")
    attributes = lease.attributes or {}
    assert attributes["swarmpod.worker.id"] == result.worker_id
    assert attributes["swarmpod.lease.id"] == result.job_ids[0]
    assert number(attributes["swarmpod.gpu_seconds.billed"]) > 60
    assert number(attributes["swarmpod.runpod.delay_ms"]) >= 60_000  # queue + cold start
    assert number(attributes["swarmpod.runpod.execution_ms"]) > 0
    top = [s.name for s in phase_children(telemetry, lease)]
    assert top == ["Requested", "Queued", "Booting", "Loading", "Warm", "Draining", "Released"]
    warm = next(s for s in phase_children(telemetry, lease) if s.name == "Warm")
    assert [s.name for s in phase_children(telemetry, warm)] == ["Idle", "Busy", "Idle"]
    (generation,) = roots(telemetry, "Generation:")
    assert generation.context is not None and lease.context is not None
    assert generation.context.trace_id != lease.context.trace_id


async def test_the_generation_joins_the_callers_trace(telemetry: Telemetry) -> None:
    async with world(V2, telemetry=telemetry) as w:
        with telemetry.tracer.start_as_current_span("POST /API/GenerateText2Image") as caller:
            await w.orch.generate(PARAMS)

    (generation,) = [s for s in telemetry.finished_spans() if s.name.startswith("Generation:")]
    assert generation.parent is not None
    assert generation.parent.span_id == caller.get_span_context().span_id


async def test_no_span_is_left_open_after_an_orchestrator_closes(telemetry: Telemetry) -> None:
    async with (
        world(V2, telemetry=telemetry, MaxWorkers=2) as w,
        anyio.create_task_group() as group,
    ):
        for _ in range(3):
            group.start_soon(w.orch.generate, PARAMS)
    assert telemetry.open_spans() == []
    assert len(roots(telemetry, "Generation:")) == 3


async def test_a_retried_runpod_call_is_a_retry_event_on_the_lease(telemetry: Telemetry) -> None:
    async with world(V2, telemetry=telemetry) as w:
        w.endpoint.faults.http_status("run", 503)
        await w.orch.generate(PARAMS)

    (lease,) = roots(telemetry, "Lease:")
    retries = [event for event in lease.events if event.name == "retry"]
    assert len(retries) == 1
    assert dict(retries[0].attributes or {})["route"] == "run"
    calls = [dict(e.attributes or {}) for e in lease.events if e.name == "runpod.run"]
    assert [call["http.status"] for call in calls] == [503, 200]

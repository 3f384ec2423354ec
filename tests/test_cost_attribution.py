"""Cost attribution: every worker's estimated bill shared among the generations it served.

The property: over a scripted mixed workload (several workers, warm reuse, failures, a
cancellation) the GPU-seconds attributed to generations, plus those of workers that served
nobody, equal the emulator's billing ledger within 1 %.
"""

from __future__ import annotations

import contextlib
from typing import Any, Literal

import anyio
import pytest
from support import ENDPOINT, KEY, settings_for

from observability import CostLedger, EndpointBilling, Telemetry
from orchestrator import GenerationResult, Orchestrator, OrchestratorError
from orchestrator.emulator import Emulator, EmulatorConfig, EndpointConfig

MODEL = "OfficialStableDiffusion/sd_xl_base_1.0.safetensors"
pytestmark = pytest.mark.anyio


# --- the sharing rule, on its own ---------------------------------------------------------


def test_a_bill_is_shared_boot_to_the_cold_generation_and_idle_evenly() -> None:
    ledger = CostLedger(EndpointBilling(price_per_hour=3.6, queue_delay_s=4, idle_timeout_s=5))
    bill = ledger.open_worker("w", protocol="v2", requested_at=0.0)
    bill.assigned("worker-1")
    bill.ready(64.0)  # started at 4 (queue delay): a 60 s boot
    cold = ledger.generation("a", user="ann", model="m")
    cold.cold_start = True
    warm = ledger.generation("b", user="bob", model="m")
    bill.serve(cold, execution_s=10.0)
    bill.serve(warm, execution_s=6.0)
    bill.stop(99.0)  # cancelled, idle out at 104: billed 100 s = 60 boot + 16 execution + 24 idle

    assert bill.billed_s == 100
    assert (cold.boot_s, cold.execution_s, cold.idle_tail_s) == (60.0, 10.0, 12.0)
    assert (warm.boot_s, warm.execution_s, warm.idle_tail_s) == (0.0, 6.0, 12.0)
    assert cold.final and warm.final
    assert cold.cost_usd == pytest.approx(82 * 3.6 / 3600)
    assert ledger.attributed_s == ledger.billed_s == 100


def test_a_lease_withdrawn_before_its_worker_started_costs_nothing() -> None:
    ledger = CostLedger(EndpointBilling(queue_delay_s=4))
    bill = ledger.open_worker("w", protocol="v2", requested_at=10.0)
    bill.stop(12.0)
    assert bill.billed_s == 0
    assert ledger.unattributed_s == 0


def test_a_worker_that_served_nobody_is_unattributed() -> None:
    settled: list[object] = []
    ledger = CostLedger(EndpointBilling(queue_delay_s=0), on_settled=settled.append)
    bill = ledger.open_worker("prewarm", protocol="v2", requested_at=0.0)
    bill.ready(30.0)
    bill.stop(85.0)  # idles out at 90
    assert ledger.unattributed_s == 90
    assert settled == [bill]


def test_a_worker_bills_the_endpoint_idle_timeout_after_its_last_job_however_it_ended() -> None:
    ledger = CostLedger(EndpointBilling(queue_delay_s=0, idle_timeout_s=5))
    bill = ledger.open_worker("w", protocol="v1", requested_at=0.0)
    bill.ready(20.0)
    bill.stop(50.0, ended_by_itself=True)
    assert bill.billed_s == 55
    cancelled = ledger.open_worker("w2", protocol="v2", requested_at=0.0)
    cancelled.ready(20.0)
    cancelled.stop(50.0)  # a cancel stops the job, not the worker (runpod SDK >= 1.10)
    assert cancelled.billed_s == 55


def test_overlapping_generations_never_attribute_more_than_the_bill() -> None:
    ledger = CostLedger(EndpointBilling(queue_delay_s=0, idle_timeout_s=0))
    bill = ledger.open_worker("w", protocol="v2", requested_at=0.0)
    bill.ready(10.0)
    costs = [ledger.generation(str(i), user=None, model=None) for i in range(3)]
    for cost in costs:
        bill.serve(cost, execution_s=20.0)  # three at once on one worker
    bill.stop(40.0)
    assert sum(cost.gpu_seconds for cost in costs) == pytest.approx(40.0)
    assert all(cost.idle_tail_s == pytest.approx(0.0) for cost in costs)


# --- the property, against the emulator's ledger -------------------------------------------


async def mixed_workload(
    endpoint: EndpointConfig, *, telemetry: Telemetry | None = None, **settings: Any
) -> tuple[Orchestrator, float, list[GenerationResult]]:
    """Bursts, warm reuse, a failure, a cancellation, a cold start after the idle window;
    returns the closed orchestrator, the emulator's billed seconds and the results."""
    config = EmulatorConfig(endpoints={ENDPOINT: endpoint}, api_keys=(KEY,))
    own = telemetry is None
    telemetry = telemetry or Telemetry.configure(in_memory=True, otlp=False)
    results: list[GenerationResult] = []
    async with Emulator(config) as emulator:
        emulated = emulator.endpoint(ENDPOINT)
        orch = Orchestrator(
            settings_for(emulator, WorkerProtocol=endpoint.protocol, **settings),
            telemetry=telemetry,
        )
        params = {"prompt": "a lighthouse", "model": MODEL, "steps": 4}

        async def generate(at: float, cancel_after: float | None = None) -> None:
            await anyio.sleep(at)
            with anyio.move_on_after(cancel_after if cancel_after is not None else 1e9):
                with contextlib.suppress(OrchestratorError):  # the failure is part of the mix
                    results.append(await orch.generate(params, images=2, user=f"user{int(at)}"))

        async def fail_one(at: float) -> None:
            await anyio.sleep(at)
            emulated.swarm_faults.generation_error("CUDA out of memory")

        async with orch, anyio.create_task_group() as group:
            for at in (0.0, 0.5, 1.0):  # a burst: two workers, one generation waits
                group.start_soon(generate, at)
            group.start_soon(generate, 2.0, 30.0)  # cancelled while booting
            group.start_soon(fail_one, 150.0)
            for at in (150.0, 160.0, 170.0):  # warm reuse, one fails
                group.start_soon(generate, at)
            group.start_soon(generate, 600.0)  # after the idle window: cold again
        await anyio.sleep(endpoint.idle_timeout_s + 5)  # let the endpoint stop what idles
        billed = float(emulated.ledger_json()["total_billed_seconds"])
    if own:
        telemetry.shutdown()
    return orch, billed, results


@pytest.mark.parametrize("protocol", ["v2", "v1"])
@pytest.mark.parametrize("cold_start_s", [75.0, (60.0, 90.0)], ids=["fixed-boot", "drawn-boot"])
async def test_attributed_gpu_seconds_equal_the_emulators_bill_within_one_percent(
    protocol: Literal["v1", "v2"], cold_start_s: float | tuple[float, float]
) -> None:
    endpoint = EndpointConfig(protocol=protocol, cold_start_s=cold_start_s, seed=7)
    orch, billed, results = await mixed_workload(endpoint, MaxWorkers=2, IdleTimeoutSec=60)

    ledger = orch.costs
    assert billed > 0
    assert ledger.open_bills == []
    assert all(cost.final for cost in ledger.generations)
    assert ledger.attributed_s == pytest.approx(billed, rel=0.01)
    assert len(ledger.bills) >= 2 if protocol == "v2" else True
    assert any(r.cost is not None and r.cost.idle_tail_s > 0 for r in results)


async def test_results_carry_their_final_cost_once_the_orchestrator_closed() -> None:
    endpoint = EndpointConfig(protocol="v2", cold_start_s=60.0)
    _, _, results = await mixed_workload(endpoint, MaxWorkers=2, GpuPricePerHour=1.8)

    assert results
    for result in results:
        cost = result.cost
        assert cost is not None and cost.final
        assert cost.generation_id == result.generation_id
        assert cost.cold_start == result.cold_start
        assert (cost.boot_s > 0) == result.cold_start
        assert cost.execution_s > 0
        assert cost.cost_usd == pytest.approx(cost.gpu_seconds * 1.8 / 3600)

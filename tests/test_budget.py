"""Per-user GPU budgets: generations past the daily GPU-seconds are refused, clearly."""

from __future__ import annotations

import datetime as dt

import anyio
import pytest
from pg_support import StoreSpot
from support import world

from orchestrator import BudgetExceededError, Phase
from orchestrator.emulator import EndpointConfig
from orchestrator.workers import GpuBudget

pytestmark = pytest.mark.anyio

PARAMS = {"prompt": "a lighthouse", "width": 64, "height": 64, "steps": 4}
V2 = EndpointConfig(protocol="v2", cold_start_s=60.0)


async def test_a_user_past_the_daily_budget_is_refused_with_the_figures() -> None:
    async with world(V2, DailyGpuSecondsPerUser=50) as w:
        await w.orch.generate(PARAMS, user="ann")  # a cold start: ~64 s of GPU
        with pytest.raises(BudgetExceededError) as caught:
            await w.orch.generate(PARAMS, user="ann")
        error = caught.value
        assert error.user == "ann" and error.limit_s == 50 and error.used_s > 50
        assert error.phase is Phase.ADMISSION and error.retryable is False
        assert "GPU-seconds" in str(error) and error.resets_at.endswith("T00:00:00Z")
        await w.orch.generate(PARAMS, user="bob")  # another user is not affected
        with pytest.raises(BudgetExceededError):
            await w.orch.prewarm(1, user="ann")


async def test_warm_generations_are_charged_only_their_own_seconds() -> None:
    async with world(V2, DailyGpuSecondsPerUser=1000) as w:
        await w.orch.generate(PARAMS, user="ann")
        budget = w.orch._budget
        assert budget is not None
        after_cold = await budget.used("ann")
        await w.orch.generate(PARAMS, user="ann")
        assert 0 < await budget.used("ann") - after_cold < 5


async def test_usage_survives_a_restart_and_resets_the_next_utc_day(spot: StoreSpot) -> None:
    now = dt.datetime(2026, 11, 28, 23, 0, tzinfo=dt.UTC)
    async with spot.open() as store:
        budget = await GpuBudget.open(store, limit_s=100, now=lambda: now)
        await budget.charge("ann", 120)
    async with spot.open() as store:
        again = await GpuBudget.open(store, limit_s=100, now=lambda: now)
        with pytest.raises(BudgetExceededError):
            await again.check("ann")
        later = lambda: now + dt.timedelta(hours=2)  # noqa: E731
        tomorrow = await GpuBudget.open(store, limit_s=100, now=later)
        await tomorrow.check("ann")


async def test_a_zero_budget_means_no_limit() -> None:
    budget = await GpuBudget.open(":memory:", limit_s=0)
    await budget.charge(None, 10_000)
    await budget.check(None)
    assert await budget.used(None) == 10_000


async def test_a_generations_share_of_its_workers_idle_time_is_charged_once_released() -> None:
    async with world(V2, DailyGpuSecondsPerUser=1000, IdleTimeoutSec=30) as w:
        result = await w.orch.generate(PARAMS, user="ann")
        budget = w.orch._budget
        assert budget is not None
        at_the_end = await budget.used("ann")
        await w.orch.drain()  # the worker is released: its bill closes
        assert result.cost is not None and result.cost.final
        assert result.cost.idle_tail_s > 0
        assert await budget.used("ann") == pytest.approx(max(at_the_end, result.cost.gpu_seconds))


async def test_a_budget_is_counted_once_across_replicas(spot: StoreSpot) -> None:
    """Charges through two store connections at once (two replicas) all count, atomically:
    spreading generations over replicas never gets past the limit."""
    async with spot.open() as first_store, spot.open() as second_store:
        first = await GpuBudget.open(first_store, limit_s=100.0)
        second = await GpuBudget.open(second_store, limit_s=100.0)

        async def charge_often(budget: GpuBudget) -> None:
            for _ in range(50):
                await budget.charge("ann", 1.0)

        async with anyio.create_task_group() as tasks:
            for budget in (first, second, first, second):
                tasks.start_soon(charge_often, budget)
        assert await first.used("ann") == await second.used("ann") == 200.0
        for budget in (first, second):
            with pytest.raises(BudgetExceededError) as refused:
                await budget.check("ann")
            assert refused.value.used_s == 200.0

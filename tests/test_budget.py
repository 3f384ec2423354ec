"""Per-user GPU budgets: generations past the daily GPU-seconds are refused, clearly."""

from __future__ import annotations

import datetime as dt

import pytest
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
        after_cold = budget.used("ann")
        await w.orch.generate(PARAMS, user="ann")
        assert 0 < budget.used("ann") - after_cold < 5


def test_usage_survives_a_restart_and_resets_the_next_utc_day(tmp_path: object) -> None:
    now = dt.datetime(2026, 11, 28, 23, 0, tzinfo=dt.UTC)
    path = f"{tmp_path}/state.sqlite3"
    budget = GpuBudget(path, limit_s=100, now=lambda: now)
    budget.charge("ann", 120)
    budget.close_file()
    again = GpuBudget(path, limit_s=100, now=lambda: now)
    with pytest.raises(BudgetExceededError):
        again.check("ann")
    tomorrow = GpuBudget(path, limit_s=100, now=lambda: now + dt.timedelta(hours=2))
    tomorrow.check("ann")


def test_a_zero_budget_means_no_limit() -> None:
    budget = GpuBudget(":memory:", limit_s=0)
    budget.charge(None, 10_000)
    budget.check(None)
    assert budget.used(None) == 10_000


async def test_a_generations_share_of_its_workers_idle_time_is_charged_once_released() -> None:
    async with world(V2, DailyGpuSecondsPerUser=1000, IdleTimeoutSec=30) as w:
        result = await w.orch.generate(PARAMS, user="ann")
        budget = w.orch._budget
        assert budget is not None
        at_the_end = budget.used("ann")
        await w.orch.drain()  # the worker is released: its bill closes
        assert result.cost is not None and result.cost.final
        assert result.cost.idle_tail_s > 0
        assert budget.used("ann") == pytest.approx(max(at_the_end, result.cost.gpu_seconds))

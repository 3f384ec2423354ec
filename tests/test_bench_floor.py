"""The floors are floors: computed from the trace as drawn, and no policy of the benchmark, on
any trace, regime and seed, bills less than the cost floor at its own waits, waits less than
the latency floor, or boots other than the seeded draws the floor planned with."""

from __future__ import annotations

import itertools
import random

import pytest

from benchmarks._draws import StartDraws
from benchmarks._figures import run_of
from benchmarks._floor import concurrency_needed, cost_floor, latency_floor
from benchmarks._replay import REGIMES, Endpoint, Regime
from benchmarks._traces import Trace, batch, interactive, sparse
from benchmarks.lease_policies import POLICIES, replay_in_virtual_time

FIXED = StartDraws(cold_s=(75.0, 75.0), flashboot_s=(6.0, 6.0), seed=1)
NEVER = StartDraws(cold_s=(75.0, 75.0), flashboot_s=None, seed=1)


# --- the floors, by hand -------------------------------------------------------------------


def test_one_request_costs_its_generation_and_the_first_draw_cold() -> None:
    draws = StartDraws(cold_s=(60.0, 90.0), flashboot_s=(2.0, 10.0), seed=3)
    found = cost_floor([100.0], [4.0], draws)
    assert found.total_s == pytest.approx(4.0 + draws.cold(0))
    assert (found.cold_starts, found.revivals) == (1, 0)


def test_a_gap_shorter_than_any_restart_is_idled_through() -> None:
    assert cost_floor([0.0, 7.0], [4.0, 4.0], FIXED).total_s == 8.0 + 75.0 + 3.0


def test_a_gap_longer_than_a_revival_pays_the_revival_when_flashboot_is_granted() -> None:
    assert cost_floor([0.0, 30.0, 94.0], [4.0] * 3, FIXED).total_s == 12.0 + 75.0 + 6.0 + 6.0
    assert cost_floor([0.0, 30.0, 94.0], [4.0] * 3, NEVER).total_s == 12.0 + 75.0 + 26.0 + 60.0


def test_a_gap_past_the_flashboot_window_costs_its_excess_or_a_chain_of_revivals() -> None:
    # 1000 s gap: keep a worker 400 s then revive (400), two chained revivals (12), or cold (75)
    assert cost_floor([0.0, 1004.0], [4.0, 4.0], FIXED).total_s == 8.0 + 75.0 + 12.0
    # with no FlashBoot the same gap costs a cold start
    assert cost_floor([0.0, 1004.0], [4.0, 4.0], NEVER).total_s == 8.0 + 75.0 + 75.0


def test_the_restarts_take_the_draws_in_order() -> None:
    draws = StartDraws(cold_s=(60.0, 90.0), flashboot_s=None, seed=5)
    found = cost_floor([0.0, 1000.0, 2000.0], [4.0] * 3, draws)
    assert found.total_s == pytest.approx(12.0 + draws.cold(0) + draws.cold(1) + draws.cold(2))


def test_waiting_lowers_the_floor_because_requests_can_share_a_boot() -> None:
    arrivals, durations = [0.0, 30.0, 60.0], [4.0] * 3
    at_once = cost_floor(arrivals, durations, NEVER)
    # allowed to wait 80 s, all three run back to back after one boot: no gap to pay
    waited = cost_floor(arrivals, durations, NEVER, waits=[80.0, 50.0, 20.0])
    assert at_once.total_s == 12.0 + 75.0 + 26.0 + 26.0
    assert waited.total_s == 12.0 + 75.0


def test_a_batch_on_w_workers_waits_its_turn_and_pays_w_cold_starts() -> None:
    arrivals, durations = [0.0] * 10, [4.0] * 10
    waits = latency_floor(arrivals, durations, workers=3)
    assert waits == (0.0, 0.0, 0.0, 4.0, 4.0, 4.0, 8.0, 8.0, 8.0, 12.0)
    assert concurrency_needed(arrivals, durations, waits) == 3
    found = cost_floor(arrivals, durations, NEVER, waits=waits)
    assert (found.total_s, found.bound, found.cold_starts) == (40.0 + 3 * 75.0, "workers", 3)
    one_at_a_time = cost_floor(arrivals, durations, NEVER, waits=[4.0 * k for k in range(10)])
    assert one_at_a_time.total_s == 40.0 + 75.0


def test_floor_arguments_are_checked() -> None:
    assert cost_floor([], [], FIXED).total_s == 0.0
    with pytest.raises(ValueError, match="one duration per arrival"):
        cost_floor([0.0], [], FIXED)
    with pytest.raises(ValueError, match="ascending"):
        cost_floor([5.0, 1.0], [4.0, 4.0], FIXED)
    with pytest.raises(ValueError, match="wait"):
        cost_floor([0.0], [4.0], FIXED, waits=[-1.0])
    with pytest.raises(ValueError, match="workers"):
        latency_floor([0.0], [4.0], workers=0)


def _one_worker_runs(arrivals: list[float], duration: float, draws: StartDraws) -> list[float]:
    """Every run of one worker that serves each request on arrival: per gap, keep the worker
    or release it and start the next just in time (the emulator's FlashBoot rule)."""
    gaps = [later - earlier - duration for earlier, later in itertools.pairwise(arrivals)]
    found = []
    for keeps in itertools.product((True, False), repeat=len(gaps)):
        cost, used = duration * len(arrivals) + draws.cold(0), 1
        for gap, keep in zip(gaps, keeps, strict=True):
            if keep:
                cost += gap
                continue
            revived = draws.flashboot_s is not None
            boot = draws.boot(used, flashboot=revived)
            if not revived or gap - boot > draws.flashboot_window_s:
                boot = draws.cold(used)
            cost += boot
            used += 1
        found.append(cost)
    return found


@pytest.mark.parametrize("flashboot", [(2.0, 10.0), None])
def test_no_keep_or_restart_plan_of_one_worker_beats_the_floor(
    flashboot: tuple[float, float] | None,
) -> None:
    rng = random.Random(11)
    for seed in range(40):
        draws = StartDraws(cold_s=(60.0, 90.0), flashboot_s=flashboot, seed=seed)
        arrivals = [0.0]
        for _ in range(6):
            arrivals.append(arrivals[-1] + 4.0 + rng.choice([5.0, 40.0, 200.0, 700.0, 2000.0]))
        floor = cost_floor(arrivals, [4.0] * len(arrivals), draws).total_s
        plans = _one_worker_runs(arrivals, 4.0, draws)
        assert floor <= min(plans) + 1e-9
        if flashboot is None:
            assert floor == pytest.approx(min(plans))  # with no revival to chain, it is the best


# --- every policy of the benchmark, on small traces, over several seeds ---------------------

SHORT_COLD_S = (20.0, 30.0)  # short starts so that every idle window behaves differently


def _traces(seed: int) -> dict[str, Trace]:
    return {
        "interactive": interactive(
            seed=seed, sessions=2, session_s=100.0, think_s=(8.0, 45.0), away_s=(650.0, 900.0)
        ),
        "batch": batch(count=7),
        "sparse": sparse(count=3, every_s=330.0),
    }


@pytest.mark.slow
@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("name", ["interactive", "batch", "sparse"])
def test_no_policy_beats_a_floor_on_any_seed(name: str, regime: Regime) -> None:
    for seed in (1, 2):
        trace = _traces(seed)[name]
        workers = 2 if name == "batch" else 3
        endpoint = Endpoint(regime, seed, max_workers=workers, cold_start_s=SHORT_COLD_S)
        for policy in POLICIES:
            replayed = replay_in_virtual_time(trace, policy, endpoint)
            run = run_of(trace, policy, endpoint, replayed)
            where = f"{name}/{regime}/seed {seed}/{policy.name}"
            assert run.boots_as_drawn, where
            assert run.waits_above_floor, where
            assert run.floor_at_waits.total_s <= run.floor.total_s + 1e-9, where
            assert run.billed_s >= run.floor_at_waits.total_s, where

"""The idle window: fixed, or the measured cold start (ski rental: never over twice the best)."""

from __future__ import annotations

import random

import pytest

from orchestrator.workers import IdleWindow
from orchestrator.workers._idle import MIN_GAPS


def test_a_fixed_window_ignores_cold_starts() -> None:
    window = IdleWindow(45.0)
    window.observe_cold_start(90.0)
    assert window.seconds == 45.0


def test_auto_assumes_a_minute_until_it_measures_one() -> None:
    assert IdleWindow("auto").seconds == 60.0
    assert IdleWindow("auto", assumed_cold_start_s=20.0).seconds == 20.0


def test_auto_follows_the_mean_recent_cold_start_and_revivals_never_shrink_it() -> None:
    window = IdleWindow("auto", history=3)
    for seconds in (90.0, 60.0, 75.0):
        window.observe_cold_start(seconds)
    assert (window.seconds, window.cold_start_s) == (75.0, 90.0)
    for _ in range(5):
        window.observe_cold_start(6.0)  # FlashBoot revivals: luck RunPod does not promise
    assert (window.seconds, window.cold_start_s) == (75.0, 90.0)
    assert window.restart_s == 6.0  # what releasing costs lately
    window.observe_cold_start(120.0)  # the oldest cold start drops out
    assert window.seconds == pytest.approx((60.0 + 75.0 + 120.0) / 3)


def _bursts(rng: random.Random, sessions: int = 4) -> list[float]:
    """Gaps of a user's sessions: pauses of 16-86 s, then away for 20-40 min."""
    gaps: list[float] = []
    for _ in range(sessions):
        gaps += [rng.uniform(16.0, 86.0) for _ in range(9)]
        gaps.append(rng.uniform(1200.0, 2400.0))
    return gaps


def test_auto_learns_to_release_at_once_when_no_window_would_catch_the_next_request() -> None:
    window = IdleWindow("auto")
    window.observe_cold_start(80.0)
    for count in range(10):
        assert window.seconds == (80.0 if count < MIN_GAPS else 0.0)
        window.observe_gap(596.0)


def test_auto_keeps_a_session_warm_through_its_pauses_when_every_restart_is_cold() -> None:
    window = IdleWindow("auto")
    window.observe_cold_start(90.0)
    gaps = _bursts(random.Random(3))
    for gap in gaps:
        window.observe_gap(gap)
    short = [gap for gap in gaps if gap < 90.0]
    assert window.seconds >= max(short)  # each pause is cheaper to idle than a 90 s restart
    assert window.seconds <= window.break_even_s


@pytest.mark.parametrize("seed", range(6))
def test_with_cheap_revivals_auto_pays_least_over_what_it_saw_keeping_3_in_4_warm(
    seed: int,
) -> None:
    window = IdleWindow("auto")
    window.observe_cold_start(90.0)
    window.observe_cold_start(8.0)  # the endpoint revives workers by FlashBoot
    rng = random.Random(seed)
    gaps = [gap for _ in range(4) for gap in (*_bursts(rng, 1)[: rng.randint(2, 9)], 1500.0)]
    for gap in gaps:
        window.observe_gap(gap)
    learnt = window.seconds
    assert sum(gap <= learnt for gap in gaps) >= 0.75 * len(gaps)
    assert learnt <= window.break_even_s

    def paid(window_s: float) -> float:
        return sum(IdleWindow.cost_of_gap(gap, window_s, 8.0) for gap in gaps)

    assert paid(learnt) <= paid(window.break_even_s)
    for other in (0.0, *gaps):
        if other <= 90.0 and sum(gap <= other for gap in gaps) >= 0.75 * len(gaps):
            assert paid(learnt) <= paid(other) + 1e-9  # no window that keeps 3 in 4 warm pays less


def test_a_fixed_window_learns_nothing() -> None:
    window = IdleWindow(45.0)
    for _ in range(20):
        window.observe_gap(600.0)
    assert window.seconds == 45.0


def test_auto_never_pays_more_than_twice_the_offline_best_whatever_the_gap() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        cold_start = rng.uniform(2.0, 120.0)
        window = IdleWindow("auto")
        window.observe_cold_start(cold_start)
        gap = rng.choice([rng.uniform(0, 2 * cold_start), rng.uniform(0, 3600)])
        paid = IdleWindow.cost_of_gap(gap, window.seconds, cold_start)
        best = min(gap, cold_start)
        assert paid <= 2 * best + 1e-9


def test_a_short_fixed_window_can_pay_far_more_than_twice_the_best() -> None:
    # The seed's policy (release at once): every gap just past the window pays a cold start.
    paid = IdleWindow.cost_of_gap(gap_s=6.0, window_s=5.0, cold_start_s=90.0)
    assert paid > 2 * min(6.0, 90.0)


@pytest.mark.parametrize("bad", [-1.0, float("inf"), float("nan")])
def test_impossible_windows_are_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="idle window"):
        IdleWindow(bad)

"""The idle window: fixed, or the measured cold start (ski rental: never over twice the best)."""

from __future__ import annotations

import random

import pytest

from orchestrator.workers import IdleWindow


def test_a_fixed_window_ignores_cold_starts() -> None:
    window = IdleWindow(45.0)
    window.observe_cold_start(90.0)
    assert window.seconds == 45.0


def test_auto_assumes_a_minute_until_it_measures_one() -> None:
    assert IdleWindow("auto").seconds == 60.0
    assert IdleWindow("auto", assumed_cold_start_s=20.0).seconds == 20.0


def test_auto_follows_the_longest_recent_cold_start() -> None:
    window = IdleWindow("auto", history=3)
    for seconds in (90.0, 60.0, 75.0):
        window.observe_cold_start(seconds)
    assert window.seconds == 90.0
    window.observe_cold_start(6.0)  # a FlashBoot revival never shrinks it; 90 s drops out
    assert window.seconds == 75.0
    for _ in range(3):
        window.observe_cold_start(6.0)  # only revivals lately: the endpoint restarts fast
    assert window.seconds == 6.0


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

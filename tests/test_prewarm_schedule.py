"""Prewarm schedules: "Mon-Fri 08:00-18:00 1" and friends, read like a calendar."""

from __future__ import annotations

import datetime as dt

import pytest

from orchestrator.workers import PrewarmRule, PrewarmSchedule

WED = dt.date(2026, 11, 25)  # a Wednesday
SAT = dt.date(2026, 11, 28)


def at(day: dt.date, hh_mm: str, plus_days: int = 0) -> dt.datetime:
    hours, minutes = map(int, hh_mm.split(":"))
    return dt.datetime.combine(day + dt.timedelta(days=plus_days), dt.time(hours, minutes))


def test_office_hours_on_weekdays_only() -> None:
    schedule = PrewarmSchedule.parse(["Mon-Fri 08:00-18:00 1"])
    assert schedule.workers_at(at(WED, "08:00")) == 1
    assert schedule.workers_at(at(WED, "17:59")) == 1
    assert schedule.workers_at(at(WED, "18:00")) == 0  # the end is exclusive
    assert schedule.workers_at(at(WED, "07:59")) == 0
    assert schedule.workers_at(at(SAT, "12:00")) == 0


def test_overlapping_rules_take_the_largest_count() -> None:
    schedule = PrewarmSchedule.parse(["Mon-Fri 08:00-18:00 1", "Wed 12:00-14:00 3"])
    assert schedule.workers_at(at(WED, "13:00")) == 3
    assert schedule.workers_at(at(WED, "14:00")) == 1


def test_a_night_window_runs_past_midnight_into_the_next_day() -> None:
    schedule = PrewarmSchedule.parse(["Sat 22:00-02:00 2"])
    assert schedule.workers_at(at(SAT, "23:30")) == 2
    assert schedule.workers_at(at(SAT, "01:00", plus_days=1)) == 2  # Sunday 01:00
    assert schedule.workers_at(at(SAT, "02:00", plus_days=1)) == 0
    assert schedule.workers_at(at(SAT, "01:00")) == 0  # Saturday 01:00 belongs to Friday


def test_day_lists_and_wrapping_ranges() -> None:
    weekend = PrewarmRule.parse("Sat,Sun 00:00-24:00 1")
    assert weekend.days == {5, 6}
    assert PrewarmRule.parse("Fri-Mon 10:00-11:00 1").days == {4, 5, 6, 0}
    assert PrewarmRule.parse("mon 10:00-11:00 1").days == {0}


def test_no_rules_no_prewarm() -> None:
    assert PrewarmSchedule().workers_at(at(WED, "12:00")) == 0


@pytest.mark.parametrize(
    ("rule", "says"),
    [
        ("Mon-Fri 8-18 1", "expected"),
        ("Funday 08:00-18:00 1", "unknown day"),
        ("Mon 25:00-26:00 1", "time of day"),
        ("Mon 08:61-09:00 1", "time of day"),
        ("Mon 08:00-08:00 1", "empty"),
        ("Mon 08:00-09:00 -1", "expected"),
    ],
)
def test_malformed_rules_are_refused_naming_the_rule(rule: str, says: str) -> None:
    with pytest.raises(ValueError, match=says) as caught:
        PrewarmSchedule.parse([rule])
    assert rule in str(caught.value)

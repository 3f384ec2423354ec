"""Prewarm schedules: how many workers to keep warm ahead of demand, by weekday and time.

A schedule is a list of rules such as ``"Mon-Fri 08:00-18:00 1"``: on those days, from the first
time (inclusive) to the second (exclusive), keep that many workers warm. Days are ``Mon`` ...
``Sun``, single or as a range (``Fri-Mon`` wraps), or comma-separated; a time range that ends
before it starts runs past midnight (``22:00-02:00``), and ``24:00`` ends a day. Where rules
overlap, the largest count wins.

>>> schedule = PrewarmSchedule.parse(["Mon-Fri 08:00-18:00 1", "Wed 12:00-14:00 3"])
>>> import datetime as dt
>>> schedule.workers_at(dt.datetime(2026, 11, 25, 12, 30))  # a Wednesday
3
>>> schedule.workers_at(dt.datetime(2026, 11, 28, 12, 30))  # a Saturday
0
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

__all__ = ["PrewarmRule", "PrewarmSchedule"]

_DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RULE: Final = re.compile(
    r"^\s*(?P<days>[A-Za-z,\-]+)\s+(?P<start>\d{1,2}:\d{2})-(?P<end>\d{1,2}:\d{2})"
    r"\s+(?P<count>\d+)\s*$"
)


def _minutes(text: str, rule: str) -> int:
    hours, minutes = (int(part) for part in text.split(":"))
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):
        raise ValueError(f"{rule!r}: {text} is not a time of day (00:00-24:00)")
    return hours * 60 + minutes


def _days(text: str, rule: str) -> frozenset[int]:
    days: set[int] = set()
    for part in text.lower().split(","):
        first, _, last = part.partition("-")
        if first not in _DAYS or (last and last not in _DAYS):
            raise ValueError(f"{rule!r}: unknown day in {part!r} (use Mon..Sun, Mon-Fri, Sat,Sun)")
        start = _DAYS.index(first)
        end = _DAYS.index(last) if last else start
        span = (end - start) % 7
        days.update((start + offset) % 7 for offset in range(span + 1))
    return frozenset(days)


@dataclass(frozen=True)
class PrewarmRule:
    """One rule: on ``days`` (0 = Monday), from ``start_min`` to ``end_min``, keep ``workers``.

    ``end_min <= start_min`` means the window runs past midnight into the next day.
    """

    days: frozenset[int]
    start_min: int
    end_min: int
    workers: int

    @classmethod
    def parse(cls, text: str) -> PrewarmRule:
        """Parse ``"<days> HH:MM-HH:MM <workers>"`` (ValueError naming the rule if malformed)."""
        match = _RULE.match(text)
        if match is None:
            raise ValueError(f"{text!r}: expected '<days> HH:MM-HH:MM <workers>'")
        start = _minutes(match["start"], text)
        end = _minutes(match["end"], text)
        if start == end:
            raise ValueError(f"{text!r}: the time range is empty")
        return cls(_days(match["days"], text), start, end, int(match["count"]))

    def covers(self, moment: dt.datetime) -> bool:
        """Whether the rule applies at ``moment`` (its own wall-clock time)."""
        minute = moment.hour * 60 + moment.minute
        today = moment.weekday()
        if self.start_min < self.end_min:
            return today in self.days and self.start_min <= minute < self.end_min
        if today in self.days and minute >= self.start_min:
            return True
        return (today - 1) % 7 in self.days and minute < self.end_min


@dataclass(frozen=True)
class PrewarmSchedule:
    """The ``Prewarm`` setting: rules whose largest applicable count is the prewarm target."""

    rules: tuple[PrewarmRule, ...] = ()

    @classmethod
    def parse(cls, rules: Iterable[str]) -> PrewarmSchedule:
        """Parse every rule (the first malformed one raises ValueError naming it)."""
        return cls(tuple(PrewarmRule.parse(rule) for rule in rules))

    def workers_at(self, moment: dt.datetime) -> int:
        """How many workers to keep warm at ``moment``."""
        return max((rule.workers for rule in self.rules if rule.covers(moment)), default=0)

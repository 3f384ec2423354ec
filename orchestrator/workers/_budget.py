"""Per-user GPU budgets: GPU-seconds per UTC day, kept in SQLite so a restart keeps them."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from typing import Final

from .._state import connect_private
from ..errors import BudgetExceededError

__all__ = ["GpuBudget"]

ANONYMOUS: Final = "(anonymous)"
"""The budget account of generations without a user."""

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS gpu_usage (
    user TEXT NOT NULL,
    day TEXT NOT NULL,
    gpu_seconds REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (user, day)
)
"""


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class GpuBudget:
    """GPU-seconds spent per user and UTC day, against a daily limit (0 = no limit).

    >>> budget = GpuBudget(":memory:", limit_s=100.0)
    >>> budget.charge("ann", 60.0); budget.charge("ann", 50.0)
    >>> budget.used("ann")
    110.0
    >>> budget.check("bob")  # bob has spent nothing
    >>> budget.check("ann")
    Traceback (most recent call last):
    ...
    orchestrator.errors.BudgetExceededError: User 'ann' has used 110 of their 100 GPU-seconds ...

    Args:
        path: the SQLite file (created 0600), or ``":memory:"``.
        limit_s: the daily GPU-seconds per user; 0 turns the guardrail off (usage is still
            counted).
        now: the wall clock (UTC), injectable for tests.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        limit_s: float,
        now: Callable[[], dt.datetime] = _utc_now,
    ) -> None:
        if not limit_s >= 0:
            raise ValueError("the daily budget must be >= 0 GPU-seconds")
        self.path = os.fspath(path)
        self.limit_s = limit_s
        self._now = now
        self._db = connect_private(self.path)
        self._db.execute(_SCHEMA)

    def __repr__(self) -> str:
        return f"GpuBudget({self.path!r}, limit_s={self.limit_s:g})"

    def close_file(self) -> None:
        """Close the SQLite connection."""
        self._db.close()

    def used(self, user: str | None, day: dt.date | None = None) -> float:
        """GPU-seconds ``user`` spent on ``day`` (default: today, UTC)."""
        row = self._db.execute(
            "SELECT gpu_seconds FROM gpu_usage WHERE user = ? AND day = ?",
            (user or ANONYMOUS, (day or self._today()).isoformat()),
        ).fetchone()
        return float(row[0]) if row else 0.0

    def check(self, user: str | None) -> None:
        """Refuse a new generation of a user who spent today's budget.

        Raises:
            BudgetExceededError: with what was used, the limit and when it resets.
        """
        if self.limit_s <= 0:
            return
        used = self.used(user)
        if used >= self.limit_s:
            tomorrow = self._today() + dt.timedelta(days=1)
            raise BudgetExceededError(
                user or ANONYMOUS,
                used_s=used,
                limit_s=self.limit_s,
                resets_at=f"{tomorrow.isoformat()}T00:00:00Z",
            )

    def charge(self, user: str | None, gpu_seconds: float) -> None:
        """Add GPU-seconds a generation of ``user`` used (today, UTC)."""
        if not gpu_seconds > 0:
            return
        self._db.execute(
            "INSERT INTO gpu_usage (user, day, gpu_seconds) VALUES (?, ?, ?) "
            "ON CONFLICT (user, day) "
            "DO UPDATE SET gpu_seconds = gpu_seconds + excluded.gpu_seconds",
            (user or ANONYMOUS, self._today().isoformat(), gpu_seconds),
        )

    def _today(self) -> dt.date:
        return self._now().astimezone(dt.UTC).date()

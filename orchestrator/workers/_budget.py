"""Per-user GPU budgets: GPU-seconds per UTC day, kept in the state store so a restart (or
another replica sharing a PostgreSQL database) counts them too."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from typing import Final

from ..errors import BudgetExceededError
from ..store import BUDGETS, StateStore, open_component

__all__ = ["GpuBudget"]

ANONYMOUS: Final = "(anonymous)"
"""The budget account of generations without a user."""


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class GpuBudget:
    """GPU-seconds spent per user and UTC day, against a daily limit (0 = no limit).

    Open it with :meth:`open`. A charge is one atomic increment in the database, so replicas
    sharing it count every second once, whichever replica served the generation.

    >>> import anyio, functools
    >>> budget = anyio.run(functools.partial(GpuBudget.open, ":memory:", limit_s=100.0))
    >>> anyio.run(budget.charge, "ann", 60.0); anyio.run(budget.charge, "ann", 50.0)
    >>> anyio.run(budget.used, "ann")
    110.0
    >>> anyio.run(budget.check, "bob")  # bob has spent nothing
    >>> anyio.run(budget.check, "ann")
    Traceback (most recent call last):
    ...
    orchestrator.errors.BudgetExceededError: User 'ann' has used 110 of their 100 GPU-seconds ...

    Args:
        store: the state store.
        limit_s: the daily GPU-seconds per user; 0 turns the guardrail off (usage is still
            counted).
        now: the wall clock (UTC), injectable for tests.
        owns_store: close the store with the budget.
    """

    def __init__(
        self,
        store: StateStore,
        *,
        limit_s: float,
        now: Callable[[], dt.datetime] = _utc_now,
        owns_store: bool = False,
    ) -> None:
        if not limit_s >= 0:
            raise ValueError("the daily budget must be >= 0 GPU-seconds")
        self.store = store
        self.limit_s = limit_s
        self._now = now
        self._owns_store = owns_store

    @classmethod
    async def open(
        cls,
        where: StateStore | str | os.PathLike[str],
        *,
        limit_s: float,
        now: Callable[[], dt.datetime] = _utc_now,
    ) -> GpuBudget:
        """The budgets in ``where``: a store, or a SQLite file (opened 0600, and closed with
        the budget).

        Raises:
            StateFileError: the SQLite file is unusable (left untouched).
            SchemaTooNewError: a newer swarmpod migrated the database.
        """
        if not limit_s >= 0:
            raise ValueError("the daily budget must be >= 0 GPU-seconds")
        store, owns = await open_component(where, BUDGETS)
        return cls(store, limit_s=limit_s, now=now, owns_store=owns)

    def __repr__(self) -> str:
        return f"GpuBudget({self.store.description!r}, limit_s={self.limit_s:g})"

    async def close_file(self) -> None:
        """Close the store it opened (a store it was given stays open)."""
        if self._owns_store:
            await self.store.close()

    async def used(self, user: str | None, day: dt.date | None = None) -> float:
        """GPU-seconds ``user`` spent on ``day`` (default: today, UTC)."""
        row = await self.store.fetchone(
            'SELECT gpu_seconds FROM gpu_usage WHERE "user" = ? AND day = ?',
            (user or ANONYMOUS, (day or self._today()).isoformat()),
        )
        return float(row[0]) if row else 0.0

    async def check(self, user: str | None) -> None:
        """Refuse a new generation of a user who spent today's budget.

        Raises:
            BudgetExceededError: with what was used, the limit and when it resets.
        """
        if self.limit_s <= 0:
            return
        used = await self.used(user)
        if used >= self.limit_s:
            tomorrow = self._today() + dt.timedelta(days=1)
            raise BudgetExceededError(
                user or ANONYMOUS,
                used_s=used,
                limit_s=self.limit_s,
                resets_at=f"{tomorrow.isoformat()}T00:00:00Z",
            )

    async def charge(self, user: str | None, gpu_seconds: float) -> None:
        """Add GPU-seconds a generation of ``user`` used (today, UTC): one atomic increment."""
        if not gpu_seconds > 0:
            return
        await self.store.execute(
            'INSERT INTO gpu_usage ("user", day, gpu_seconds) VALUES (?, ?, ?) '
            'ON CONFLICT ("user", day) '
            "DO UPDATE SET gpu_seconds = gpu_usage.gpu_seconds + excluded.gpu_seconds",
            (user or ANONYMOUS, self._today().isoformat(), gpu_seconds),
        )

    def _today(self) -> dt.date:
        return self._now().astimezone(dt.UTC).date()

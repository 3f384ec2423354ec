"""The per-second billing ledger of an emulated endpoint (runpod-api.md §4.5).

RunPod bills a worker from its start until its full stop, rounded up to the whole second,
covering start (boot), execution and idle-timeout time. Throttled and unhealthy time is not
billed. One :class:`LedgerEntry` per worker ever started; times are loop time in seconds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from ._worker import EmulatedWorker

__all__ = ["LedgerEntry", "ledger_entry", "ledger_json"]

_EPSILON: Final = 1e-6  # float noise must not bill an extra second


@dataclass(frozen=True)
class LedgerEntry:
    """What one worker costs: its billed seconds, split by phase.

    >>> entry = LedgerEntry("w1", 0.0, 95.2, 96, False, 60.0, 30.0, 5.2)
    >>> entry.open, entry.billed_seconds
    (False, 96)

    Attributes:
        worker_id: the worker (``RUNPOD_POD_ID``).
        started_at: loop time at which the worker was started.
        stopped_at: loop time at which it stopped; None while it is still live (entry open).
        billed_seconds: boot + execution + idle seconds, rounded up to the whole second.
        flashboot: whether it started as a FlashBoot revival.
        boot_s: seconds spent booting (initializing), crashed boots included.
        execution_s: seconds spent running jobs.
        idle_s: seconds spent idle (waiting for a job, the idle timeout).
    """

    worker_id: str
    started_at: float
    stopped_at: float | None
    billed_seconds: int
    flashboot: bool
    boot_s: float
    execution_s: float
    idle_s: float

    @property
    def open(self) -> bool:
        """Whether the worker is still live, so the entry keeps growing."""
        return self.stopped_at is None

    def to_json(self) -> dict[str, Any]:
        """A JSON-serializable dict of this entry (``open`` included)."""
        return {
            "worker_id": self.worker_id,
            "started_at": self.started_at,
            "stopped_at": self.stopped_at,
            "open": self.open,
            "billed_seconds": self.billed_seconds,
            "flashboot": self.flashboot,
            "boot_s": self.boot_s,
            "execution_s": self.execution_s,
            "idle_s": self.idle_s,
        }


def ledger_entry(worker: EmulatedWorker, now: float) -> LedgerEntry:
    """The ledger entry of ``worker`` as of ``now`` (loop time)."""
    phases = worker.phases_at(now)
    billed = math.ceil(max(0.0, sum(phases.values()) - _EPSILON))
    return LedgerEntry(
        worker_id=worker.id,
        started_at=worker.started_at,
        stopped_at=worker.stopped_at,
        billed_seconds=billed,
        flashboot=worker.flashboot,
        boot_s=phases["boot"],
        execution_s=phases["execution"],
        idle_s=phases["idle"],
    )


def ledger_json(endpoint_id: str, entries: Iterable[LedgerEntry]) -> dict[str, Any]:
    """The whole ledger as a JSON-serializable dict, with totals."""
    rows = list(entries)
    return {
        "endpoint_id": endpoint_id,
        "entries": [entry.to_json() for entry in rows],
        "workers": len(rows),
        "open_workers": sum(entry.open for entry in rows),
        "total_billed_seconds": sum(entry.billed_seconds for entry in rows),
        "total_boot_s": sum(entry.boot_s for entry in rows),
        "total_execution_s": sum(entry.execution_s for entry in rows),
        "total_idle_s": sum(entry.idle_s for entry in rows),
    }

"""Expiry of an emulated endpoint's jobs: ``policy.ttl`` and result retention.

A job is deleted, in any state, at its ttl after submission (24 h when unset, runpod-api.md
§2.1), or once finished at its result retention (``run_retention_s`` / ``runsync_retention_s``),
whichever comes first. A running job deleted this way loses its result.
"""

from __future__ import annotations

import logging
import math
from typing import Final

import anyio

from ._board import EndpointBoard
from ._jobs import EmulatedJob

__all__ = ["DEFAULT_TTL_S", "Retention"]

_log = logging.getLogger("swarmpod.emulator")

DEFAULT_TTL_S: Final = 86_400.0
"""A job's time to live when its ``policy.ttl`` is unset (24 h, runpod-api.md §2.1)."""


class Retention:
    """The expiry sweep of one endpoint: deletes each job when its time is up."""

    def __init__(self, board: EndpointBoard) -> None:
        self._board = board

    def expires_at(self, job: EmulatedJob) -> float:
        """When ``job`` is deleted (loop time)."""
        ttl = job.ttl_s()
        at = job.submitted_at + (DEFAULT_TTL_S if ttl is None else ttl)
        if job.finished_at is not None:
            config = self._board.config
            retention = config.runsync_retention_s if job.sync else config.run_retention_s
            at = min(at, job.finished_at + retention)
        return at

    async def run(self) -> None:
        """Delete jobs as they expire, until the emulator stops."""
        board = self._board
        while not board.closing:
            now = anyio.current_time()
            next_at = math.inf
            for job in list(board.jobs.values()):
                at = self.expires_at(job)
                if at <= now:
                    self._expire(job)
                else:
                    next_at = min(next_at, at)
            with anyio.move_on_after(next_at - now):
                await board.changed()

    def _expire(self, job: EmulatedJob) -> None:
        """Delete a job past its ttl or retention, in any state (a running one's result is lost)."""
        board = self._board
        _log.debug("[Emulator] %s: job %s expired (%s)", board.endpoint_id, job.id, job.status)
        if job in board.queue:
            board.queue.remove(job)
        del board.jobs[job.id]
        board.notify()

"""The scaler of an emulated endpoint: how many workers its queue calls for.

Two of RunPod's scalers (runpod-api.md §4.2), chosen by ``EndpointConfig.scaler``, and the
``min_workers`` floor under both:

- ``queue_delay``: a worker starts for each normal-priority job queued longer than
  ``queue_delay_s``, less the workers already coming (idle, initializing or throttled);
- ``request_count``: ``ceil((inQueue + inProgress) / scaler_value)`` workers; ``lowPriority``
  jobs still queued do not count, so they never start a worker.

Both stop at ``max_workers``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import anyio

from orchestrator.runpod import JobStatus

from ._board import EndpointBoard
from ._worker import WorkerState

__all__ = ["Scaler"]

_COMING = (WorkerState.IDLE, WorkerState.INITIALIZING, WorkerState.THROTTLED)


class Scaler:
    """Starts workers as the queue calls for them.

    Args:
        board: the endpoint's state.
        start_worker: starts one worker, given why (for the log).
    """

    def __init__(self, board: EndpointBoard, start_worker: Callable[[str], None]) -> None:
        self._board = board
        self._start_worker = start_worker

    async def run(self) -> None:
        """Scale on every change (and when a queued job's delay is up), until the emulator stops."""
        board = self._board
        while not board.closing:
            now = anyio.current_time()
            while len(board.running_workers()) < board.config.min_workers:
                self._start_worker("min workers")
            if board.config.scaler == "request_count":
                next_check = self._scale_for_requests()
            else:
                next_check = self._scale_for_queue(now)
            with anyio.move_on_after(next_check - now):
                await board.changed()

    def _scale_for_queue(self, now: float) -> float:
        """Start workers for jobs past the queue delay; return when to look again."""
        board = self._board
        delay = board.config.queue_delay_s
        eligible = [job for job in board.queue if not job.low_priority]
        # one expression for "due" on both sides: ``now - t >= d`` and ``t + d <= now`` can
        # disagree by a rounding error, and a due time == now never lets loop time advance
        overdue = [job for job in eligible if job.submitted_at + delay <= now]
        coming = sum(w.state in _COMING for w in board.workers)
        room = board.config.max_workers - len(board.running_workers())
        for _ in range(min(len(overdue) - coming, room)):
            self._start_worker("queue delay")
        waiting = [job.submitted_at + delay for job in eligible if job.submitted_at + delay > now]
        return min(waiting, default=math.inf)

    def _scale_for_requests(self) -> float:
        """Request-count scaler: ceil((inQueue + inProgress) / scaler_value) workers."""
        board = self._board
        queued = sum(not job.low_priority for job in board.queue)
        running = sum(job.state is JobStatus.IN_PROGRESS for job in board.jobs.values())
        target = math.ceil((queued + running) / board.config.scaler_value)
        live = len(board.running_workers())
        for _ in range(min(target, board.config.max_workers) - live):
            self._start_worker("request count")
        return math.inf

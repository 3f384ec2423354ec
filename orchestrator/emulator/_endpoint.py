"""One emulated serverless endpoint: its parts put together behind one object.

The parts, each one job, all acting on one :class:`~._board.EndpointBoard` (the shared jobs,
queue and workers, and the change pulse everyone waits on, so nothing polls):

- :mod:`._queue`: the job queue (``/run`` to result, ``/retry``, ``/cancel``, purge);
- :mod:`._scaler`: how many workers the queue calls for;
- :mod:`._worker_life`: a worker's life (host, boot, serve jobs, stop), FlashBoot;
- hosted workers (the user's own handler): :mod:`._hosted_process` runs its OS process,
  :mod:`._hosted_supervisor` supervises a worker's process run, :mod:`._hosted_channel` is
  the worker-facing API the process speaks (through the worker routes, :mod:`._worker_api`);
- :mod:`._retention`: ttl and result retention;
- :mod:`._ledger`: the billing ledger.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anyio
from anyio.abc import TaskGroup

from orchestrator.emulator.swarm import SwarmFaults

from ._board import EndpointBoard
from ._config import EndpointConfig
from ._faults import EndpointFaults
from ._hosted_channel import HostedChannel
from ._jobs import EmulatedJob
from ._ledger import LedgerEntry, ledger_entry, ledger_json
from ._queue import JobQueue
from ._ratelimit import RateLimiter
from ._retention import Retention
from ._scaler import Scaler
from ._webhooks import WebhookCall
from ._worker import EmulatedWorker
from ._worker_life import WorkerLife

__all__ = ["EmulatedEndpoint"]

_HEALTH_WORKER_KEYS = ("idle", "initializing", "ready", "running", "throttled", "unhealthy")


class EmulatedEndpoint:
    """A RunPod serverless endpoint: its jobs, its workers, its faults and its counters.

    Attributes:
        endpoint_id: the endpoint id in the URL.
        config: its :class:`EndpointConfig`.
        faults: the API fault script of this endpoint.
        swarm_faults: the fault script shared by the fake SwarmUI of every worker.
        api_calls: ``(method, route, status)`` of every request served for this endpoint.
        rate_limiter: the per-route token buckets (None when rate limits are off).
        hosted: the worker-facing API of a hosted endpoint (what the worker routes call).
    """

    def __init__(self, endpoint_id: str, config: EndpointConfig) -> None:
        self.endpoint_id = endpoint_id
        self.config = config
        self._board = EndpointBoard(endpoint_id, config)
        self._queue = JobQueue(self._board)
        self._life = WorkerLife(self._board, self._queue)
        self._scaler = Scaler(self._board, self._life.start_worker)
        self._retention = Retention(self._board)
        self.hosted = HostedChannel(self._board, self._queue)
        self.faults: EndpointFaults = self._board.faults
        self.swarm_faults: SwarmFaults = self._life.swarm_faults
        self.api_calls: list[tuple[str, str, int]] = []
        self.rate_limiter = None if config.rate_limits is None else RateLimiter(config.rate_limits)

    # -- what it holds -------------------------------------------------------------------

    @property
    def jobs(self) -> Mapping[str, EmulatedJob]:
        """Every job submitted and not purged, by id."""
        return self._board.jobs

    @property
    def workers(self) -> Sequence[EmulatedWorker]:
        """Every worker ever started, stopped ones included, in start order."""
        return self._board.workers

    @property
    def webhook_calls(self) -> list[WebhookCall]:
        """Every webhook delivery attempt, in order."""
        return self._board.webhook_calls

    def running_workers(self) -> list[EmulatedWorker]:
        """Workers not stopped (initializing, idle, running or unhealthy)."""
        return self._board.running_workers()

    def health(self) -> dict[str, Any]:
        """The ``/health`` object (spec §2.9), computed from the current state.

        ``completed``/``failed`` count every job kept (TIMED_OUT counts as failed); ``retried``
        counts ``/retry`` calls; ``ready`` is always 0 (the emulator has no such worker state).
        """
        workers = dict.fromkeys(_HEALTH_WORKER_KEYS, 0)
        for worker in self._board.workers:
            if worker.live:
                workers[worker.state.value] += 1
        return {"jobs": self._queue.health(), "workers": workers}

    @property
    def ledger(self) -> list[LedgerEntry]:
        """The billing ledger: one entry per worker ever started, in start order.

        A live worker's entry is open (``stopped_at`` None) and counts up to now.
        """
        now = anyio.current_time()
        return [ledger_entry(worker, now) for worker in self._board.workers]

    def ledger_json(self) -> dict[str, Any]:
        """The ledger as a JSON-serializable dict with totals (``total_billed_seconds``, ...)."""
        return ledger_json(self.endpoint_id, self.ledger)

    # -- faults --------------------------------------------------------------------------

    def worker_swarm_faults(self, ordinal: int) -> SwarmFaults:
        """The fault script of one worker's fake SwarmUI: the ``ordinal``-th started (1 = first).

        That worker's SwarmUI follows this script instead of the shared :attr:`swarm_faults`;
        script it before the worker starts (a worker that already runs keeps its script).
        """
        return self._life.worker_swarm_faults(ordinal)

    def kill_worker(self, worker_id: str, reason: str = "the worker died") -> None:
        """Kill a live worker at once: its running job FAILS, it and its SwarmUI stop."""
        self._life.kill_worker(worker_id, reason)

    # -- the API side --------------------------------------------------------------------

    def submit(
        self, job_input: Any, policy: dict[str, Any], webhook: str | None, *, sync: bool
    ) -> EmulatedJob:
        """Queue a new job (``/run``, ``/runsync``)."""
        return self._queue.submit(job_input, policy, webhook, sync=sync)

    async def wait_terminal(self, job: EmulatedJob, wait_s: float) -> None:
        """Wait until ``job`` is terminal, ``wait_s`` passed, or the emulator is stopping."""
        await self._board.wait_until(lambda: job.state.is_terminal, wait_s)

    async def wait_until(self, condition: Callable[[], bool], wait_s: float) -> None:
        """Wait until ``condition()`` holds, ``wait_s`` passed, or the emulator is stopping."""
        await self._board.wait_until(condition, wait_s)

    def retry(self, job: EmulatedJob) -> bool:
        """Requeue a FAILED or TIMED_OUT job under its id (False for any other state)."""
        return self._queue.retry(job)

    def cancel(self, job: EmulatedJob) -> None:
        """Cancel a job: a queued one is never taken; a running one stops alone.

        The worker stays up (runpod SDK >= 1.10's per-job stop): it serves on or idles out. A
        hosted worker finds the job on its stop channel (``jobsToStop``).
        """
        self._queue.cancel(job)

    def purge_queue(self) -> int:
        """Remove every queued job (they are forgotten, as on RunPod); return how many."""
        return self._queue.purge()

    def emit_stream(self, job_id: str, output: Any) -> None:
        """Append one streamed output to a job, as a generator handler's ``yield`` does."""
        self._queue.emit_stream(job_id, output)

    def report_progress(self, job_id: str, output: Any) -> None:
        """A worker's ``progress_update``: an IN_PROGRESS job shows ``output`` in ``/status``.

        Ignored unless the job is IN_PROGRESS (a late update never revives a finished job).
        """
        self._queue.report_progress(job_id, output)

    # -- lifecycle -----------------------------------------------------------------------

    def open(self, task_group: TaskGroup, *, base_url: str | None = None) -> None:
        """Start the scaler (and so the min workers) and the expiry sweep in ``task_group``.

        ``base_url`` (``http://HOST:PORT/v2``) is where hosted workers reach the worker routes.
        """
        self._board.open(task_group, base_url)
        task_group.start_soon(self._scaler.run, name=f"scaler {self.endpoint_id}")
        task_group.start_soon(self._retention.run, name=f"expiry {self.endpoint_id}")

    def close(self) -> None:
        """Stop every worker and release ``/runsync`` waiters (the emulator is stopping)."""
        self._board.close()

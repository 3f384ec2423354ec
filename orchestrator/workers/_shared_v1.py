"""One v1 worker per endpoint and key, shared by the generations in flight.

A v1 keepalive job is not tied to the worker that was woken: with two workers woken at once,
each keepalive can land on the other's worker, and cancelling "my" keepalive then stops the
worker another generation is using (specs/worker-protocols.md, "Hold at most one v1 worker per
endpoint"). So swarmpod holds at most one v1 worker per endpoint and key; every generation
that arrives while it is held (or being woken) joins it, and the last one to leave releases it.
SwarmUI queues concurrent generations on its own backends.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import anyio

from ..runpod import Job
from ._handle import WorkerHandle
from ._v1 import V1Protocol, WakeWatcher

__all__ = ["SharedV1Worker"]

log = logging.getLogger("swarmpod.workers")

Spawn = Callable[[Callable[[], Coroutine[Any, Any, None]]], object]

# Submit the next keepalive this long before the current one ends: under RunPod's 4 s queue
# delay (no extra worker starts) and its 5 s idle timeout (the worker waits for it).
_RENEW_AHEAD_S = 2.0


@dataclass
class _Wake:
    """One attempt to wake and hold a worker, shared by everyone who attached to it."""

    accepted: anyio.Event = field(default_factory=anyio.Event)
    ready: anyio.Event = field(default_factory=anyio.Event)
    job: Job | None = None
    handle: WorkerHandle | None = None
    failure: BaseException | None = None
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)


class SharedV1Worker:
    """The v1 worker of one endpoint and key, woken once and shared.

    Args:
        protocol: the v1 protocol with the RunPod client (and key) of this station.
        spawn: starts a background task in the owner's task group (the orchestrator's).
    """

    def __init__(self, protocol: V1Protocol, spawn: Spawn) -> None:
        self._protocol = protocol
        self._spawn = spawn
        self._users = 0
        self._wake: _Wake | None = None
        self._retired: list[_Wake] = []
        self._watchers: list[WakeWatcher] = []

    @property
    def users(self) -> int:
        """Generations attached right now."""
        return self._users

    @property
    def held(self) -> WorkerHandle | None:
        """The worker held and ready, if any."""
        wake = self._wake
        return wake.handle if wake is not None and wake.failure is None else None

    def attach(self) -> WorkerHandle | None:
        """Join the station; returns the warm worker at once if one is held, else None."""
        self._users += 1
        return self.held

    async def wake(self, watch: WakeWatcher | None = None) -> Job:
        """Make sure a wake-up is under way; returns its job once RunPod accepted it."""
        if self._wake is None:
            self._wake = _Wake()
            self._spawn(self._wake_and_hold)
        wake = self._wake
        if watch is not None:
            self._watchers.append(watch)
        await wake.accepted.wait()
        if wake.job is None:
            raise _copy(wake.failure)
        return wake.job

    async def wait_ready(self) -> WorkerHandle:
        """Wait until the shared worker is awake and held (the caller sets the deadline)."""
        wake = self._wake
        assert wake is not None, "wake() comes first"
        await wake.ready.wait()
        if wake.handle is None:
            raise _copy(wake.failure)
        return wake.handle

    def invalidate(self) -> None:
        """Forget the held worker (it stopped answering); the next generation wakes anew.

        The old keepalive is still cancelled when the last user leaves.
        """
        if self._wake is not None and self._wake.handle is not None:
            log.warning(
                "[RunPodServerless] worker %s stopped answering; the next generation wakes "
                "a new one",
                self._wake.handle.worker_id,
            )
            self._retired.append(self._wake)
            self._wake = None

    async def detach(self) -> list[str]:
        """Leave the station; the last one out releases the worker. Returns cancelled jobs.

        Call it shielded: releasing must finish even when the caller was cancelled.
        """
        self._users -= 1
        if self._users > 0:
            return []
        wakes = [*self._retired, *([self._wake] if self._wake is not None else [])]
        self._wake, self._retired = None, []
        self._watchers.clear()
        cancelled: list[str] = []
        for wake in wakes:
            wake.scope.cancel()
            cancelled += await self._protocol.release(wake_job=wake.job, handle=wake.handle)
        return cancelled

    # --- the background task ----------------------------------------------------------

    async def _wake_and_hold(self) -> None:
        wake = self._wake
        assert wake is not None

        def broadcast(job: Job) -> None:
            wake.job = job
            for watch in list(self._watchers):
                watch(job)

        with wake.scope:
            try:
                wake.job = await self._protocol.submit_wakeup()
                wake.accepted.set()
                receipt = await self._protocol.wait_until_woken(wake.job, watch=broadcast)
                wake.handle = await self._protocol.hold(receipt)
            except Exception as exc:
                wake.failure = exc
            finally:
                wake.accepted.set()
                wake.ready.set()
                self._watchers.clear()
            if wake.handle is None:
                if self._wake is wake:
                    self._wake = None  # later generations try afresh
                    # A wake-up job still queued or running must be withdrawn by the last
                    # user out, or RunPod starts (and bills) a worker nobody waits for.
                    self._retired.append(wake)
                return
            await self._keep_held(wake)

    async def _keep_held(self, wake: _Wake) -> None:
        """Confirm the keepalive, then renew it just before it ends while users remain."""
        assert wake.handle is not None
        try:
            await self._protocol.confirm_hold(wake.handle)
        except Exception as exc:
            log.warning("[RunPodServerless] %s", exc)
            self.invalidate()
            return
        hold = math.ceil(self._protocol.hold_seconds)
        while True:
            await anyio.sleep(max(0.0, hold - _RENEW_AHEAD_S))
            renewed = await self._protocol.hold(wake.handle.receipt)
            # The old keepalive completes on its own a moment later and the worker takes the
            # new one; cancelling the old one would stop the worker.
            wake.handle.hold_job_id = renewed.hold_job_id


def _copy(failure: BaseException | None) -> BaseException:
    """A per-caller copy of a shared failure (callers attach their own phase and path)."""
    if failure is None:
        return RuntimeError("the shared wake-up ended without a worker or an error")
    clone = failure.__class__.__new__(failure.__class__)
    clone.__dict__.update(copy.copy(failure.__dict__))
    clone.args = failure.args
    clone.__cause__ = failure.__cause__
    return clone

"""An in-memory station and SwarmUI: the engine's chart logic tested with no HTTP at all.

:class:`FakeStation` hands out seats the way a pool does (at once when warm, after a scripted
boot otherwise, telling why it waits); its workers' SwarmUI is :class:`FakeSwarm`, which
generates after a scripted time or fails as scripted. Nothing leaves the process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
import anyio

from orchestrator.errors import OrchestratorError
from orchestrator.runpod import Job
from orchestrator.swarmui import GeneratedImage, GenerationEvent, Progress, SwarmUIClient
from orchestrator.workers import PoolStatus, Seat, Waiting, WaitingCallback, WaitReason
from orchestrator.workers._handle import WakeReceipt, WorkerHandle


class FakeSwarm(SwarmUIClient):
    """A worker's SwarmUI in memory: ``generate`` takes ``seconds`` (one step event a second),
    then returns ``images`` blank images, or raises ``failure``."""

    def __init__(self, seconds: float, failure: OrchestratorError | None) -> None:
        self._seconds = seconds
        self._failure = failure

    async def generate(
        self,
        params: Mapping[str, Any],
        *,
        images: int = 1,
        transport: Literal["ws", "http"] = "ws",
        on_event: Callable[[GenerationEvent], None] | None = None,
        expected_size: tuple[int, int] | None = None,
    ) -> list[GeneratedImage]:
        steps = max(1, int(self._seconds))
        for step in range(steps):
            await anyio.sleep(self._seconds / steps)
            if on_event is not None:
                done = (step + 1) / steps
                on_event(Progress(batch_index=0, overall=done, current=done))
        if self._failure is not None:
            raise self._failure
        return [
            GeneratedImage(b"png", "image/png", 64, 64, seed=index, batch_index=index)
            for index in range(images)
        ]


@dataclass
class FakeWorker(WorkerHandle):
    """A worker whose SwarmUI is a :class:`FakeSwarm`."""

    seconds: float = 1.0
    failure: OrchestratorError | None = None

    def swarm_client(
        self, http: aiohttp.ClientSession, *, session_id: str | None, request_timeout: float
    ) -> SwarmUIClient:
        """The in-memory SwarmUI."""
        return FakeSwarm(self.seconds, self.failure)


@dataclass
class FakeStation:
    """A station in memory.

    Attributes:
        warm: a warm seat is free at once.
        boot_s: how long a cold seat takes to come (``inf``: never).
        reasons: what a waiting generation is told, in order, one per second.
        seconds: how long a generation takes on the worker.
        failure: what the worker's SwarmUI raises after ``seconds``.
        given_back: every seat given back, with whether it was broken.
        seats: every seat handed out.
    """

    warm: bool = False
    boot_s: float = 30.0
    reasons: Sequence[WaitReason] = (WaitReason.QUEUED, WaitReason.BOOTING)
    seconds: float = 5.0
    failure: OrchestratorError | None = None
    given_back: list[tuple[Seat, bool]] = field(default_factory=list)
    seats: list[Seat] = field(default_factory=list)
    protocol: str = "v2"

    def try_take(self) -> Seat | None:
        """A warm seat when :attr:`warm`."""
        return self._seat(cold=False) if self.warm else None

    async def acquire(self, report: WaitingCallback) -> Seat:
        """Tell the reasons one a second, then a cold seat after :attr:`boot_s`."""
        started = anyio.current_time()
        job = Job(id="fake-job", status="IN_QUEUE")  # RunPod took the request at once
        for reason in self.reasons:
            report(Waiting(reason, job=job))
            await anyio.sleep(1.0)
        await anyio.sleep(max(0.0, self.boot_s - (anyio.current_time() - started)))
        return self._seat(cold=True)

    async def give_back(self, seat: Seat, *, broken: bool = False) -> None:
        """Noted in :attr:`given_back`."""
        self.given_back.append((seat, broken))

    def prewarm(self, workers: int, *, hold_s: float | None = None) -> int:
        """Nothing to prewarm."""
        return 0

    def set_floor(self, workers: int) -> None:
        """No floor."""

    def status(self) -> PoolStatus:
        """Nothing held."""
        return PoolStatus(0, 0, 0, 0, 0, 0)

    async def close(self) -> None:
        """Nothing to release."""

    def end_worker(self) -> None:
        """The last seat's worker ends underneath its generation (its lease is cancelled)."""
        ended = self.seats[-1].ended
        assert ended is not None
        ended.set()

    def _seat(self, *, cold: bool) -> Seat:
        worker = FakeWorker(
            receipt=WakeReceipt("fake-worker", "http://fake", None, None, None),
            protocol=self.protocol,
            hold_job_id="fake-job",
            seconds=self.seconds,
            failure=self.failure,
        )
        seat = Seat(
            handle=worker,
            cold=cold,
            checked=True,
            taken_at=anyio.current_time(),
            ended=anyio.Event(),
        )
        self.seats.append(seat)
        return seat

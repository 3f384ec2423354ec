"""Emulated serverless workers: identity, state, and the fake SwarmUI each one hosts."""

from __future__ import annotations

import enum
import uuid

import anyio

from orchestrator.emulator.swarm import FakeSwarmUI

__all__ = ["EmulatedWorker", "WorkerState", "new_worker_id"]


class WorkerState(enum.StrEnum):
    """A worker's state, as the RunPod console and ``/health`` name them."""

    INITIALIZING = "initializing"
    IDLE = "idle"
    RUNNING = "running"
    STOPPED = "stopped"
    UNHEALTHY = "unhealthy"


def new_worker_id() -> str:
    """A fresh worker id in RunPod's shape (14 lowercase alphanumerics, ``RUNPOD_POD_ID``)."""
    return uuid.uuid4().hex[:14]


class EmulatedWorker:
    """One worker of an emulated endpoint.

    ``public_url`` is the base URL of its fake SwarmUI on 127.0.0.1 once it has started. A real
    worker reports ``https://{worker_id}-7801.proxy.runpod.net`` instead; a later issue adds
    that mode with a map from proxy URLs to local ports.

    Attributes:
        id: the worker id (``RUNPOD_POD_ID``).
        state: its :class:`WorkerState`.
        public_url: where its SwarmUI answers; None until started (kept after it stopped).
        swarm: its fake SwarmUI.
        session_id: the SwarmUI session the v1 handler cached at start.
        flashboot: whether it started as a FlashBoot revival (faster start).
        started_at: loop time at which it was started (boot began).
        stopped_at: loop time at which it stopped, None while live.
        current_job_id: the job it is running, if any.
    """

    def __init__(self, worker_id: str, swarm: FakeSwarmUI, *, started_at: float, flashboot: bool):
        self.id = worker_id
        self.state = WorkerState.INITIALIZING
        self.public_url: str | None = None
        self.swarm = swarm
        self.session_id: str | None = None
        self.flashboot = flashboot
        self.started_at = started_at
        self.stopped_at: float | None = None
        self.current_job_id: str | None = None
        self.scope = anyio.CancelScope()

    @property
    def live(self) -> bool:
        """Whether the worker still holds a slot (anything but stopped)."""
        return self.state is not WorkerState.STOPPED

    def __repr__(self) -> str:
        return f"EmulatedWorker(id={self.id!r}, state={self.state.value!r})"

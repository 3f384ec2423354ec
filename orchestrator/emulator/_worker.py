"""Emulated serverless workers: identity, state, billing phases, and the fake SwarmUI each hosts."""

from __future__ import annotations

import enum
import secrets
import uuid
from typing import Final

import anyio

from orchestrator.emulator.swarm import FakeSwarmUI
from orchestrator.secrets import Secret

__all__ = ["BILLED_PHASES", "EmulatedWorker", "WorkerState", "new_worker_id", "new_worker_key"]


class WorkerState(enum.StrEnum):
    """A worker's state, as the RunPod console and ``/health`` name them."""

    THROTTLED = "throttled"
    INITIALIZING = "initializing"
    IDLE = "idle"
    RUNNING = "running"
    STOPPED = "stopped"
    UNHEALTHY = "unhealthy"


BILLED_PHASES: Final = {
    WorkerState.INITIALIZING: "boot",
    WorkerState.RUNNING: "execution",
    WorkerState.IDLE: "idle",
}
"""Billed worker states and the ledger phase each one counts as (runpod-api.md §4.5).

Throttled (no host), unhealthy (crashed) and stopped workers are not billed.
"""


PROXY_DOMAIN: Final = "proxy.runpod.net"
"""RunPod's HTTP proxy domain: a worker's port P answers at ``https://{worker}-{P}.{domain}``."""


def proxy_url(worker_id: str, port: int = 7801) -> str:
    """The RunPod proxy URL of a worker's port (SwarmUI listens on 7801 in the worker images)."""
    return f"https://{worker_id}-{port}.{PROXY_DOMAIN}"


def new_worker_id() -> str:
    """A fresh worker id in RunPod's shape (14 lowercase alphanumerics, ``RUNPOD_POD_ID``)."""
    return uuid.uuid4().hex[:14]


def new_worker_key() -> Secret:
    """A fresh ``RUNPOD_AI_API_KEY`` for one process of a hosted worker."""
    return Secret(f"wk_{secrets.token_urlsafe(24)}", ephemeral=True)


class EmulatedWorker:
    """One worker of an emulated endpoint.

    ``public_url`` is the base URL of its fake SwarmUI on 127.0.0.1 once it has started, or,
    with ``EndpointConfig.proxy_urls``, its RunPod proxy URL
    ``https://{worker_id}-7801.proxy.runpod.net`` (routed locally by
    :meth:`Emulator.proxy_middleware` or :class:`EmulatorProxyRouting`).

    A hosted worker (``EndpointConfig.handler_command``) runs a process of the user's handler;
    the attributes from ``api_key`` on describe that process and its protocol traffic.

    Setting ``state`` also keeps the billing clock: the time spent in each billed state
    (:data:`BILLED_PHASES`) adds up in ``phase_seconds`` (loop time).

    Attributes:
        id: the worker id (``RUNPOD_POD_ID``).
        state: its :class:`WorkerState`.
        public_url: the SwarmUI URL it reports (``local_url``, or its RunPod proxy URL with
            ``proxy_urls``); None until started (kept after it stopped).
        local_url: where its fake SwarmUI really listens (``http://127.0.0.1:PORT``).
        swarm: its fake SwarmUI.
        session_id: the SwarmUI session the v1 handler cached at start.
        flashboot: whether it started as a FlashBoot revival (faster start).
        started_at: loop time at which it was started (created; boot began unless throttled).
        stopped_at: loop time at which it stopped, None while live.
        job_ids: the jobs it is running (at most one on the built-in image).
        boot_crashes: how many of its boots crashed so far.
        api_key: its current process's ``RUNPOD_AI_API_KEY``, the only key its worker
            routes accept (each process gets a new one).
        process_id: pid (and process group) of its current process; None before the first.
        ready_at: when its current process first asked for a job (None until then).
        last_ping_at: when it last pinged; ``ping_job_ids`` the job ids that ping carried.
        pings: how many pings it sent.
        stop_job_ids: jobs its stop channel has still to hand out (``jobsToStop``).
        job_scopes: the cancel scope of each job its built-in handler runs (a per-job stop
            cancels only that job, as the SDK's stop channel does).
        recycle: it asked to be recycled (``stopPod``); a fresh process replaces this one.
        exit_codes: exit code of each of its processes that ended, in order.
    """

    def __init__(
        self,
        worker_id: str,
        swarm: FakeSwarmUI,
        *,
        started_at: float,
        flashboot: bool,
        state: WorkerState = WorkerState.INITIALIZING,
    ):
        self.id = worker_id
        self.public_url: str | None = None
        self.local_url: str | None = None
        self.swarm = swarm
        self.session_id: str | None = None
        self.flashboot = flashboot
        self.started_at = started_at
        self.stopped_at: float | None = None
        self.job_ids: list[str] = []
        self.boot_crashes = 0
        self.scope = anyio.CancelScope()
        self.api_key = new_worker_key()
        self.process_id: int | None = None
        self.ready_at: float | None = None
        self.last_ping_at: float | None = None
        self.ping_job_ids: tuple[str, ...] = ()
        self.pings = 0
        self.stop_job_ids: list[str] = []
        self.job_scopes: dict[str, anyio.CancelScope] = {}
        self.recycle = False
        self.exit_codes: list[int] = []
        self.phase_seconds = {"boot": 0.0, "execution": 0.0, "idle": 0.0}
        self._state = state
        self._since = started_at

    @property
    def current_job_id(self) -> str | None:
        """The (first) job it is running, if any; setting None forgets every job it ran."""
        return self.job_ids[0] if self.job_ids else None

    @current_job_id.setter
    def current_job_id(self, job_id: str | None) -> None:
        self.job_ids = [] if job_id is None else [job_id]

    @property
    def state_since(self) -> float:
        """Loop time at which the current state began (setting any state restarts it)."""
        return self._since

    @property
    def state(self) -> WorkerState:
        """The worker's state; setting it closes the billing phase of the previous one."""
        return self._state

    @state.setter
    def state(self, state: WorkerState) -> None:
        now = anyio.current_time()
        phase = BILLED_PHASES.get(self._state)
        if phase is not None:
            self.phase_seconds[phase] += now - self._since
        self._state, self._since = state, now

    def phases_at(self, now: float) -> dict[str, float]:
        """Seconds billed per phase (boot, execution, idle) up to ``now`` (loop time)."""
        phases = dict(self.phase_seconds)
        phase = BILLED_PHASES.get(self._state)
        if phase is not None:
            phases[phase] += max(0.0, now - self._since)
        return phases

    @property
    def live(self) -> bool:
        """Whether the worker still holds a slot (anything but stopped)."""
        return self._state is not WorkerState.STOPPED

    def __repr__(self) -> str:
        return f"EmulatedWorker(id={self.id!r}, state={self._state.value!r})"

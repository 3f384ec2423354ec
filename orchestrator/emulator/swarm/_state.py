"""The mutable state of one fake SwarmUI: sessions, backend, loaded model, outputs, activity."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Literal

import anyio

from ._auth import has_permission, role_permissions
from ._catalog import Catalog
from ._config import SwarmConfig, SwarmFaults

__all__ = ["BACKEND_IDS", "BACKEND_STATES", "BackendState", "Generation", "Session", "SwarmState"]

BackendState = Literal["running", "loading", "idle", "errored", "disabled", "none"]
BACKEND_STATES: Final = ("running", "loading", "idle", "errored", "disabled", "none")
BACKEND_IDS: Final = ["0"]
"""The ids of the fake's backends (one backend)."""

# backend state -> (GetCurrentStatus backend_status.status, class, message)  (§3.4)
_SUMMARY: Final = {
    "running": ("running", "", ""),
    "loading": ("loading", "soft", "Backends are still loading on the server..."),
    "idle": ("idle", "warn", "All backends are idle."),
    "errored": ("errored", "error", "Some backends have errored on the server."),
    "disabled": ("all_disabled", "error", "All backends are disabled on the server."),
    "none": ("empty", "error", "No backends present. You must configure backends."),
}
_LIST_STATUS: Final = {"none": "disabled"}
_EPOCH: Final = datetime(2026, 1, 1, 12, 0)


@dataclass
class Session:
    """One SwarmUI session and its per-session status counters (§3.4)."""

    id: str
    user_id: str = "local"
    waiting_gens: int = 0
    loading_models: int = 0
    waiting_backends: int = 0
    live_gens: int = 0

    def counters(self) -> dict[str, int]:
        """The ``status`` object of GetCurrentStatus."""
        return {
            "waiting_gens": self.waiting_gens,
            "loading_models": self.loading_models,
            "waiting_backends": self.waiting_backends,
            "live_gens": self.live_gens,
        }


@dataclass(eq=False)
class Generation:
    """One generation request in flight; ``scope`` is cancelled by InterruptAll."""

    session: Session
    request_id: int
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    interrupted: bool = False

    def interrupt(self) -> None:
        """Stop this generation as SwarmUI's InterruptAll does."""
        self.interrupted = True
        self.scope.cancel()


class SwarmState:
    """Everything one fake SwarmUI remembers between requests."""

    def __init__(self, config: SwarmConfig, faults: SwarmFaults, worker_id: str) -> None:
        self.config = config
        self.faults = faults
        self.worker_id = worker_id
        self.catalog = Catalog(config.models)
        self.server_id = str(uuid.uuid4())
        self.sessions: dict[str, Session] = {}
        self.in_flight: set[Generation] = set()
        self.outputs: dict[str, bytes] = {}
        self.current_model: str | None = None
        self.backend_override: BackendState | None = None
        self.started_at: float | None = None
        self.last_used_at: float | None = None
        self.last_activity_at: float | None = None
        self.generations_started = 0
        self.generations_finished = 0
        self.model_loads_started = 0
        self.model_loads_in_flight = 0
        self.request_counter = 0
        self.output_counter = 0
        self.auth_tokens: set[str] = set()
        self.api_keys: dict[tuple[str, str], tuple[str, str]] = {}
        self.runpod_status = "RUNNING"
        self.live_connections: dict[int, Callable[[], None]] = {}  # generation requests: abort
        self.permissions: tuple[str, ...] = (
            config.permissions
            if config.permissions is not None
            else role_permissions(config.role, runpod_extension=config.runpod_extension)
        )
        self._limiter: anyio.CapacityLimiter | None = None
        self._model_lock: anyio.Lock | None = None
        self._activity: anyio.Event | None = None

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        """The backend's usage slots (``max_usages``), made on first use inside the loop."""
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.config.max_usages)
        return self._limiter

    @property
    def model_lock(self) -> anyio.Lock:
        """Serializes model loads."""
        if self._model_lock is None:
            self._model_lock = anyio.Lock()
        return self._model_lock

    def notify_activity(self) -> None:
        """A generation or model load started or ended: wake :meth:`wait_for_activity`."""
        if self._activity is not None:
            self._activity.set()
            self._activity = None

    async def wait_for_activity(self) -> None:
        """Wait until the next :meth:`notify_activity`."""
        if self._activity is None:
            self._activity = anyio.Event()
        await self._activity.wait()

    def now(self) -> datetime:
        """The server's wall-clock time: ``config.clock``, else 2026-01-01 12:00 + loop time."""
        if self.config.clock is not None:
            return self.config.clock()
        return _EPOCH + timedelta(seconds=anyio.current_time())

    def permitted(self, permission: str) -> bool:
        """Whether the server's role grants ``permission`` (§7)."""
        return has_permission(self.permissions, permission)

    def new_generation(self, session: Session) -> Generation:
        """A generation request of ``session``, numbered in arrival order."""
        self.request_counter += 1
        return Generation(session, self.request_counter)

    def new_session(self, user_id: str = "local") -> Session:
        """Create a session with a 40-lowercase-hex id (§2.1)."""
        session = Session(secrets.token_hex(20), user_id)
        self.sessions[session.id] = session
        return session

    def backend_state(self) -> BackendState:
        """The backend's state: the test override, else ``loading`` until ``backend_load_s``."""
        if self.backend_override is not None:
            return self.backend_override
        ends = self.loading_ends_at()
        if ends is not None and anyio.current_time() < ends:
            return "loading"
        return "running"

    def loading_ends_at(self) -> float | None:
        """When the start-up ``loading`` state ends (None if not loading by the clock)."""
        if self.backend_override is None and self.started_at is not None:
            return self.started_at + self.config.backend_load_s
        return None

    def status_object(self, session: Session | None) -> dict[str, Any]:
        """A GetCurrentStatus object (§3.4), also streamed on the WS."""
        state = self.backend_state()
        status, css_class, message = _SUMMARY[state]
        running = state == "running"
        return {
            "status": session.counters() if session is not None else Session("").counters(),
            "backend_status": {
                "status": status,
                "class": css_class,
                "message": message,
                "any_loading": state == "loading",
            },
            "supported_features": list(self.config.features) if running else [],
        }

    def backends(self, *, full_data: bool) -> dict[str, dict[str, Any]]:
        """The ListBackends answer (§5.3): one backend, id 0."""
        now = anyio.current_time()
        state = self.backend_state()
        since = None if self.last_used_at is None else int(now - self.last_used_at)
        entry: dict[str, Any] = {
            "type": "comfyui_selfstart",
            "status": _LIST_STATUS.get(state, state),
            "id": 0,
            "settings": {"StartScript": "dlbackend/ComfyUI/main.py", "GPU_ID": "0"},
            "modcount": 0,
            "features": list(self.config.features),
            "enabled": state not in ("disabled", "none"),
            "title": f"ComfyUI Self-Starting ({self.worker_id})",
            "max_usages": self.config.max_usages,
            "seconds_since_used": 0 if since is None else since,
            "time_since_used": "Never" if since is None else f"{since} seconds ago",
            "can_load_models": True,
        }
        if full_data:
            entry["current_model"] = self.current_model
        return {"0": entry}

"""The v2 worker handler (HartsyAI worker image 2.x): leases behind a bearer-token gateway.

Outputs follow specs/worker-protocols.md (v2). Actions:

- ``lease``: a streaming job that holds its worker. Input ``idle_seconds`` (default
  :data:`DEFAULT_IDLE_S`), ``startup_grace_seconds`` (:data:`DEFAULT_STARTUP_GRACE_S`) and
  ``max_lease_seconds`` (:data:`DEFAULT_MAX_LEASE_S`), each a finite number > 0; anything else
  refuses the lease. The handler issues a fresh random token, installs it as the worker's
  SwarmUI gateway token, and streams the lease as its first output (the lease starts then).
  It returns ``{success: true, protocol: 2, ended, ...}`` (COMPLETED) when the lease ends:

  - ``ended: "idle"``: no generation or model load for a window, measured from the fake
    SwarmUI's own activity (``last_activity_at``, ``busy``), never from HTTP traffic. Before
    the lease's first generation or model load the window is ``startup_grace_seconds`` from the
    lease's start; from then on it is ``idle_seconds`` after the last generation or model load
    ended. A lease never ends this way while a generation or model load is in flight.
  - ``ended: "max_lease"``: ``max_lease_seconds`` after the lease's start, busy or not.

  The token is revoked (the gateway closes) when the lease ends, is refused, or is interrupted
  (``/cancel``, a dying worker, the execution timeout). The job still obeys RunPod's execution
  timeout, so a client sets ``policy.executionTimeout`` above ``max_lease_seconds``.
- ``health``: ``{healthy, worker_id, protocol: 2}``.
- anything else: ``{success: false, error: "Unknown action: <a>", available_actions}`` (FAILED).

A refused lease (bad input, :meth:`EndpointFaults.lease_refused`) streams
``{success: false, error}`` as its first output and returns it, so the job ends FAILED.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import anyio
from anyio.lowlevel import checkpoint

from orchestrator.emulator.swarm import FakeSwarmUI

from ._handler_context import HandlerContext

__all__ = [
    "DEFAULT_IDLE_S",
    "DEFAULT_MAX_LEASE_S",
    "DEFAULT_STARTUP_GRACE_S",
    "V2_ACTIONS",
    "LeaseTerms",
    "handle_v2",
    "lease_terms",
]

V2_ACTIONS: Final = ("lease", "health")
DEFAULT_IDLE_S: Final = 300.0
"""``idle_seconds`` when a lease sets none."""
DEFAULT_STARTUP_GRACE_S: Final = 600.0
"""``startup_grace_seconds`` when a lease sets none."""
DEFAULT_MAX_LEASE_S: Final = 3600.0
"""``max_lease_seconds`` when a lease sets none."""

_PROTOCOL: Final = 2
_SWARMUI_VERSION: Final = "0.9.7.0-emulated"


@dataclass(frozen=True)
class LeaseTerms:
    """The windows of one lease, in seconds.

    Attributes:
        idle_s: the lease ends this long after the last generation or model load.
        startup_grace_s: ... or this long after its start when nothing was generated or loaded.
        max_lease_s: it ends this long after its start at the latest.
    """

    idle_s: float
    startup_grace_s: float
    max_lease_s: float


def lease_terms(inputs: Mapping[str, Any]) -> LeaseTerms | str:
    """The lease's terms from a job input, or the error text refusing it.

    >>> lease_terms({"idle_seconds": 60})
    LeaseTerms(idle_s=60.0, startup_grace_s=600.0, max_lease_s=3600.0)
    >>> lease_terms({"max_lease_seconds": 0})
    'max_lease_seconds must be a positive number of seconds'
    """
    values: list[float] = []
    for key, default in (
        ("idle_seconds", DEFAULT_IDLE_S),
        ("startup_grace_seconds", DEFAULT_STARTUP_GRACE_S),
        ("max_lease_seconds", DEFAULT_MAX_LEASE_S),
    ):
        value = inputs.get(key, default)
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)
            or value <= 0
        ):
            return f"{key} must be a positive number of seconds"
        values.append(float(value))
    return LeaseTerms(*values)


async def handle_v2(context: HandlerContext) -> dict[str, Any]:
    """Run one v2 job and return the handler's dict (``error`` key = FAILED)."""
    inputs: Mapping[str, Any] = context.input if isinstance(context.input, Mapping) else {}
    action = inputs.get("action")
    worker = context.worker
    if action == "lease":
        return await _lease(context, inputs)
    if action == "health":
        alive = worker.swarm.base_url is not None
        return {"healthy": alive, "worker_id": worker.id, "protocol": _PROTOCOL}
    return {
        "success": False,
        "error": f"Unknown action: {action}",
        "available_actions": list(V2_ACTIONS),
    }


def _refuse(context: HandlerContext, error: str) -> dict[str, Any]:
    refusal = {"success": False, "error": error, "protocol": _PROTOCOL}
    context.stream(refusal)
    return refusal


async def _lease(context: HandlerContext, inputs: Mapping[str, Any]) -> dict[str, Any]:
    terms = lease_terms(inputs)
    if isinstance(terms, str):
        return _refuse(context, terms)
    faults = context.faults
    if faults.lease_refusals:
        return _refuse(context, faults.lease_refusals.popleft())
    if faults.silent_leases > 0:
        faults.silent_leases -= 1
        await anyio.sleep_forever()
    cancel_after_s = faults.lease_cancellations.popleft() if faults.lease_cancellations else None
    worker, swarm = context.worker, context.worker.swarm
    token = secrets.token_urlsafe(32)
    swarm.set_gateway_token(token)
    try:
        started = anyio.current_time()
        generations, loads = swarm.generations_started, swarm.model_loads_started
        context.stream(
            {
                "success": True,
                "protocol": _PROTOCOL,
                "public_url": worker.public_url,
                "token": token,
                "worker_id": worker.id,
                "session_id": worker.session_id,
                "version": _SWARMUI_VERSION,
                "idle_seconds": terms.idle_s,
                "startup_grace_seconds": terms.startup_grace_s,
                "max_lease_seconds": terms.max_lease_s,
            }
        )
        with anyio.move_on_after(math.inf if cancel_after_s is None else cancel_after_s) as fault:
            ended = await _hold(swarm, terms, started)
        if fault.cancelled_caught:
            context.cancel()  # stops this job, so this handler too (the worker goes idle)
            await checkpoint()
            ended = "cancelled"
        return {
            "success": True,
            "protocol": _PROTOCOL,
            "ended": ended,
            "worker_id": worker.id,
            "lease_seconds": anyio.current_time() - started,
            "generations": swarm.generations_started - generations,
            "model_loads": swarm.model_loads_started - loads,
        }
    finally:
        swarm.set_gateway_token(None)


async def _hold(swarm: FakeSwarmUI, terms: LeaseTerms, started: float) -> str:
    """Wait until the lease ends; return why (``idle`` or ``max_lease``)."""
    ends_at = started + terms.max_lease_s
    activity = swarm.generations_started + swarm.model_loads_started
    while (now := anyio.current_time()) < ends_at:
        wake_at = ends_at
        if not swarm.busy:
            used = swarm.generations_started + swarm.model_loads_started > activity
            last = swarm.last_activity_at
            if used and last is not None:
                wake_at = min(wake_at, last + terms.idle_s)
            else:
                wake_at = min(wake_at, started + terms.startup_grace_s)
            if now >= wake_at:
                return "idle"
        with anyio.move_on_after(wake_at - now):
            await swarm.wait_for_activity()
    return "max_lease"

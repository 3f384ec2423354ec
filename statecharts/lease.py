"""The lease chart: one instance per worker held, a pure transition model.

::

    Requested ──submitted──▶ Queued ──assigned──▶ Booting ──leased──▶ Warm ┌ Idle ──take──▶ Busy ┐
        │                      │                     │                     └ Idle ◀──free─── Busy ┘
        │                      └───────release───────┴──────release───────────┤
        │                                                                      ▼
        │                           Released ◀──────ended───────────── Draining
        │                              ▲
        │                              └─────ended (the worker ended the lease itself)── Warm
        └── lose (from any live state: refused, worker died, lease job failed) ──▶ Lost

What each event means (the pool's I/O sends them, in this order):

- ``submitted``: RunPod accepted the lease job (``/run`` answered with an id); it is queued.
- ``assigned``: the job is ``IN_PROGRESS``: a worker is assigned and billing, booting.
- ``leased``: the first streamed output arrived (``public_url`` + ``token``): the worker is warm.
- ``take`` / ``free``: a generation starts on / leaves the warm worker.
- ``release``: give the worker back: withdraw a queued lease, or cancel a booting or warm one.
  ``Draining`` lasts until RunPod confirms (the job is terminal).
- ``ended``: the lease job is terminal: after a release (Draining), or because the worker ended
  it itself (idle or ``max_lease_seconds``) while warm.
- ``lose``: the lease failed or its worker is gone without a release (request refused, job
  FAILED/TIMED_OUT, worker died, status unknown). ``Lost`` leases are cancelled once more and
  reported, so none stays billing.

A queued lease that a freed warm worker makes unnecessary is withdrawn with ``release``; one
already ``Booting`` is kept (it bills already). Blocked events raise ``TransitionNotAllowed``.

>>> chart = LeaseChart()
>>> for event in ("submitted", "assigned", "leased", "take", "free", "release", "ended"):
...     _ = chart.send(event)
>>> chart.state_id
'released'
"""

from __future__ import annotations

from statemachine import State, StateMachine

__all__ = ["LeaseChart"]


class LeaseChart(StateMachine):
    """States and events of one lease (see the module docstring for the picture)."""

    allow_event_without_transition = False

    requested = State("Requested", initial=True)
    queued = State("Queued")
    booting = State("Booting")

    class warm(State.Compound, name="Warm"):  # noqa: N801 (a state, named like the others)
        """The worker is up and ours: Idle (free for a generation) or Busy (generating)."""

        idle = State("Idle", initial=True)
        busy = State("Busy")

        take = idle.to(busy)
        free = busy.to(idle)

    draining = State("Draining")
    released = State("Released", final=True)
    lost = State("Lost", final=True)

    submitted = requested.to(queued)
    assigned = queued.to(booting)
    leased = booting.to(warm)
    release = queued.to(draining) | booting.to(draining) | warm.to(draining)
    ended = draining.to(released) | warm.to(released)
    lose = (
        requested.to(lost) | queued.to(lost) | booting.to(lost) | warm.to(lost) | draining.to(lost)
    )

    @property
    def state_id(self) -> str:
        """The id of the innermost active state, e.g. ``"busy"`` (Warm's substates)."""
        return str(self._innermost().id)

    @property
    def state_name(self) -> str:
        """The display name of the innermost active state, e.g. ``"Busy"``."""
        return str(self._innermost().name)

    @property
    def is_warm(self) -> bool:
        """Whether the worker is up and ours (Warm, Idle or Busy)."""
        return any(state.id == "warm" for state in self.configuration)

    def _innermost(self) -> State:
        states = list(self.configuration)
        return next((s for s in states if s.parent is not None), states[0])

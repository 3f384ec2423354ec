"""The worker chart: one instance per worker swarmpod holds, on either worker protocol.

::

    Requested ─submitted─▶ Queued ─assigned─▶ Booting ─handed_over─▶ Loading ─loaded─▶ Warm
       │                    │ │ └────────────handed_over────────────────▲          Idle ⇄ Busy
       │             withdraw stall ─▶ Stalled ─handed_over─────────────┘        (take / free)
       │                    ▼                                                 retire │
       │              Withdrawing ─withdrawn─▶ Released ◀─ended─ Draining ◀─ Retiring
       │                    └─assigned (too late: a worker bills) ─▶ Booting
       └─ lose (from any live state: refused, worker died, job failed) ─▶ Lost

    release: Queued, Booting, Stalled, Loading, Warm, Retiring ─▶ Draining
    ended:   Warm, Retiring (the worker ended its job itself) ─▶ Released

What each state means, and which RunPod facts send the events (the worker's runner sends them,
after the I/O that learnt them):

- **Requested**: the job that will hold a worker is being sent (v2: the ``lease`` job; v1: the
  ``wakeup`` job). ``submitted``: RunPod answered ``/run`` with the job's id.
- **Queued**: the job waits ``IN_QUEUE`` for RunPod to start a worker. ``assigned``: RunPod runs
  it (``IN_PROGRESS``; v1: ``/health`` counts a worker initializing): a worker bills and boots.
- **Withdrawing**: a queued job nobody needs any more is being taken back (``/status`` then
  ``/cancel``): ``withdrawn`` when it was still queued (nothing billed), ``assigned`` when a
  worker had taken it already (it bills: kept).
- **Booting**: the worker's container and SwarmUI start (the cold start).
- **Stalled**: booting or queued without hope of arriving on time: an answer of its job's
  ``/stream`` was lost on the way (that answer may have carried the lease, which RunPod never
  sends again). It is no capacity; it is released when surplus or when its slot is needed, and
  becomes Loading if its lease arrives after all.
- **Loading**: the worker was handed over (v2: the lease streamed; v1: the wake-up completed
  and the keepalive holds it) and its SwarmUI answers, but sessions or backends are not ready.
  ``loaded``: SwarmUI has a session and no backend loading.
- **Warm**: the worker is up and ours: **Idle** (a free seat) or **Busy** (generations on it;
  how many seats, the pool counts). ``take`` / ``free``: the first seat taken, the last freed.
- **Retiring**: warm, but taking no new generation (it stopped answering, or its lease is near
  its maximum age); released once its last generation left.
- **Draining**: released: its job is being cancelled (``/cancel``) until RunPod confirms.
- **Released**: its job ended (cancelled, withdrawn, or ended by the worker itself: ``ended``
  from Warm or Retiring, the lease's idle or maximum time). Nothing bills.
- **Lost**: it failed without a release (refused, the worker died, the job FAILED, a release
  RunPod did not confirm). Its job is cancelled once more and reported, so none stays billing.

Blocked events raise ``TransitionNotAllowed``.

>>> chart = WorkerChart()
>>> for event in ("submitted", "assigned", "handed_over", "loaded", "take", "free", "release"):
...     chart.send(event)
>>> chart.send("ended"); chart.state_id
'released'
"""

from __future__ import annotations

from statemachine import State, StateMachine

from ._runtime import Chart

__all__ = ["WorkerChart", "WorkerStates"]


class WorkerStates(StateMachine):
    """States and events of one worker, declared (see the module docstring for the picture)."""

    allow_event_without_transition = False

    requested = State("Requested", initial=True)
    queued = State("Queued")
    withdrawing = State("Withdrawing")
    booting = State("Booting")
    stalled = State("Stalled")
    loading = State("Loading")

    class warm(State.Compound, name="Warm"):  # noqa: N801 (a state, named like the others)
        """The worker is up and ours: Idle (a free seat) or Busy (generating)."""

        idle = State("Idle", initial=True)
        busy = State("Busy")

        take = idle.to(busy)
        free = busy.to(idle)

    retiring = State("Retiring")
    draining = State("Draining")
    released = State("Released", final=True)
    lost = State("Lost", final=True)

    submitted = requested.to(queued)
    assigned = booting.from_(queued, withdrawing)
    withdraw = queued.to(withdrawing)
    withdrawn = withdrawing.to(released)
    stall = stalled.from_(queued, booting)
    handed_over = loading.from_(queued, booting, stalled)
    loaded = loading.to(warm)
    retire = warm.to(retiring)
    release = draining.from_(queued, booting, stalled, loading, warm, retiring)
    ended = released.from_(draining, warm, retiring)
    lose = lost.from_(
        requested, queued, withdrawing, booting, stalled, loading, warm, retiring, draining
    )


class WorkerChart(Chart):
    """One worker's chart: :class:`WorkerStates`, run light (one per worker held)."""

    declared = WorkerStates

    @property
    def is_warm(self) -> bool:
        """Whether the worker is up and ours (Warm: Idle or Busy)."""
        return self.is_in("warm")

    @property
    def is_live(self) -> bool:
        """Whether the worker may still bill (not Released, not Lost)."""
        return not self.is_terminated

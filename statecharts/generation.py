"""The generation chart: one instance per generation, a pure transition model.

::

    Idle ──wake──▶ Waking ──accepted──▶ Polling ──worker_ready──▶ Ready ──generate──▶ Generating
      │                                                            ▲                     │
      └──reuse_warm (a warm worker is free) ───────────────────────┘                  release
                                                                                         ▼
                            Done ◀──released── ShuttingDown ◀────────────────────────────┘
     any non-final state ──timeout / error / cancel──▶ ShuttingDown ──released──▶ Failed | Cancelled

The chart does no I/O and reads no clock: the engine's anyio tasks do the work and ``send()``
the outcome in. :class:`GenerationStates` declares it (python-statemachine: the diagrams are
drawn from it); :class:`GenerationChart` runs it, light enough to make one per generation.
``ShuttingDown`` means "give the worker back"; it is entered on every path, so no worker is
left billing. Which final state ``released`` leads to depends on the event that
entered ``ShuttingDown``: ``release`` → Done, ``cancel`` → Cancelled, ``timeout``/``error`` →
Failed. Events that the current state does not allow raise ``TransitionNotAllowed``.

>>> chart = GenerationChart()
>>> for event in ("wake", "accepted", "worker_ready", "generate", "release", "released"):
...     _ = chart.send(event)
>>> chart.state_id
'done'
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any

from statemachine import State, StateMachine

from ._runtime import Chart

__all__ = ["GenerationChart", "GenerationStates", "Outcome"]


class Outcome(enum.StrEnum):
    """How a generation ends; decided by the event that entered ShuttingDown."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class GenerationStates(StateMachine):
    """States and events of one generation, declared (see the module docstring for the picture).

    Attributes:
        outcome: set when ShuttingDown is entered; None before.
        failure: the exception passed with ``timeout``/``error`` (``failure=...``), if any.
    """

    idle = State("Idle", initial=True)
    waking = State("Waking")
    polling = State("Polling")
    ready = State("Ready")
    generating = State("Generating")
    shutting_down = State("ShuttingDown")
    done = State("Done", final=True)
    failed = State("Failed", final=True)
    cancelled = State("Cancelled", final=True)

    wake = idle.to(waking)
    reuse_warm = idle.to(ready)
    accepted = waking.to(polling)
    worker_ready = polling.to(ready)
    generate = ready.to(generating)
    release = generating.to(shutting_down)

    timeout = shutting_down.from_(idle, waking, polling, ready, generating)
    error = shutting_down.from_(idle, waking, polling, ready, generating)
    cancel = shutting_down.from_(idle, waking, polling, ready, generating)

    released = (
        shutting_down.to(done, cond="succeeded")
        | shutting_down.to(cancelled, cond="was_cancelled")
        | shutting_down.to(failed)
    )

    def __init__(self, **kwargs: Any) -> None:
        self.outcome: Outcome | None = None
        self.failure: BaseException | None = None
        super().__init__(**kwargs)

    @property
    def state_id(self) -> str:
        """The id of the (single, flat) active state, e.g. ``"polling"``."""
        (active,) = self.configuration
        return str(active.id)

    @property
    def state_name(self) -> str:
        """The display name of the active state, e.g. ``"Polling"``."""
        (active,) = self.configuration
        return str(active.name)

    def succeeded(self) -> bool:
        """Guard: the generation produced its images."""
        return self.outcome is Outcome.SUCCEEDED

    def was_cancelled(self) -> bool:
        """Guard: the caller cancelled the generation."""
        return self.outcome is Outcome.CANCELLED

    def on_release(self) -> None:
        self.outcome = Outcome.SUCCEEDED

    def on_cancel(self) -> None:
        self.outcome = Outcome.CANCELLED

    def on_timeout(self, failure: BaseException | None = None) -> None:
        self.outcome = Outcome.FAILED
        self.failure = failure

    def on_error(self, failure: BaseException | None = None) -> None:
        self.outcome = Outcome.FAILED
        self.failure = failure


class GenerationChart(Chart):
    """One generation's chart: :class:`GenerationStates`, run light (one per generation).

    Attributes:
        outcome: set when ShuttingDown is entered; None before.
        failure: the exception passed with ``timeout``/``error`` (``failure=...``), if any.
    """

    declared = GenerationStates

    @property
    def waiting_for_worker(self) -> bool:
        """Waking or Polling: the generation waits for its worker."""
        return self.state in (GenerationStates.waking, GenerationStates.polling)

    @property
    def on_worker(self) -> bool:
        """Ready or Generating: the generation holds a worker and uses it."""
        return self.state in (GenerationStates.ready, GenerationStates.generating)

    @property
    def shutting_down(self) -> bool:
        """ShuttingDown: giving the worker back."""
        return self.state is GenerationStates.shutting_down

    def __init__(self, listeners: Iterable[Any] = ()) -> None:
        self.outcome: Outcome | None = None
        self.failure: BaseException | None = None
        super().__init__(listeners)

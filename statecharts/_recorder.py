"""A chart listener that records the path of visited states with their loop times."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["PathRecorder", "StateVisit"]


@dataclass
class StateVisit:
    """One visit of a state: its name, the event that entered it, and when (loop time)."""

    state: str
    event: str
    entered_at: float
    left_at: float | None = None

    @property
    def duration(self) -> float:
        """Seconds spent in the state (0 while still inside or for final states)."""
        return 0.0 if self.left_at is None else self.left_at - self.entered_at


class PathRecorder:
    """Listener: appends a :class:`StateVisit` on every state entry, closes it on exit.

    ``clock`` returns the current time in seconds (the engine passes ``anyio.current_time``).
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.visits: list[StateVisit] = []

    def on_enter_state(self, state: Any, event: Any) -> None:
        self.visits.append(StateVisit(str(state.name), str(event), self._clock()))

    def on_exit_state(self, state: Any) -> None:
        if self.visits and self.visits[-1].state == str(state.name):
            self.visits[-1].left_at = self._clock()

    @property
    def path(self) -> list[str]:
        """State names in the order visited, e.g. ``["Idle", "Waking", ...]``."""
        return [visit.state for visit in self.visits]

    def seconds_in(self, state: str) -> float:
        """Total seconds spent in ``state`` over all its visits."""
        return sum(visit.duration for visit in self.visits if visit.state == state)

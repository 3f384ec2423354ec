"""The idle window: how long a free warm worker is kept before it is released.

A warm worker costs its idle seconds; releasing it costs the next request a cold start. With
``IdleTimeoutSec = "auto"`` the window is the endpoint's measured cold-start duration: the
ski-rental break-even. Whatever the gap ``g`` before the next request, the idle-plus-cold-start
GPU-seconds paid are then at most twice the best possible, ``min(g, cold start)``
(:meth:`IdleWindow.cost_of_gap`).

The measured cold start is the longest of the recent starts: a FlashBoot revival (seconds
instead of a minute) is luck RunPod does not promise, and letting revivals shrink the window
would trade every next request's latency for a restart that may well be cold.
"""

from __future__ import annotations

from collections import deque
from typing import Final, Literal

__all__ = ["IdleWindow"]

DEFAULT_COLD_START_S: Final = 60.0
"""The cold start assumed by ``auto`` before the endpoint's first one was measured."""


class IdleWindow:
    """The idle window of one endpoint, fixed or following its measured cold starts.

    >>> window = IdleWindow("auto")
    >>> window.seconds  # nothing measured yet
    60.0
    >>> window.observe_cold_start(80.0); window.observe_cold_start(6.0)
    >>> window.seconds  # the longest recent start (the 6 s one was a FlashBoot revival)
    80.0
    >>> IdleWindow(30.0).seconds
    30.0

    Attributes:
        setting: the ``IdleTimeoutSec`` value (seconds, or ``"auto"``).
    """

    def __init__(
        self,
        setting: float | Literal["auto"],
        *,
        assumed_cold_start_s: float = DEFAULT_COLD_START_S,
        history: int = 10,
    ) -> None:
        if setting != "auto" and not 0 <= setting < float("inf"):
            raise ValueError("the idle window must be >= 0 seconds or 'auto'")
        if history < 1 or not assumed_cold_start_s > 0:
            raise ValueError("history must be >= 1 and the assumed cold start > 0")
        self.setting = setting
        self._assumed = assumed_cold_start_s
        self._recent: deque[float] = deque(maxlen=history)

    def __repr__(self) -> str:
        return f"IdleWindow({self.setting!r}, seconds={self.seconds:g})"

    def observe_cold_start(self, seconds: float) -> None:
        """Record one measured cold start (wake-up request to worker ready) of the endpoint."""
        if seconds >= 0:
            self._recent.append(seconds)

    @property
    def cold_start_s(self) -> float:
        """The endpoint's cold start: the longest of the recent starts, or the assumption."""
        return max(self._recent) if self._recent else self._assumed

    @property
    def seconds(self) -> float:
        """How long a free warm worker is kept now."""
        return self.cold_start_s if self.setting == "auto" else float(self.setting)

    @staticmethod
    def cost_of_gap(gap_s: float, window_s: float, cold_start_s: float) -> float:
        """GPU-seconds paid between two requests ``gap_s`` apart, beyond the generations.

        Within the window the worker idles through the gap; past it, it idled the whole window
        and the next request pays a cold start.
        """
        return gap_s if gap_s <= window_s else window_s + cold_start_s

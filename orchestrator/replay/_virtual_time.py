"""A fresh looptime event loop for the blocking replays (the ``replay`` extra)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._extras import import_extra

__all__ = ["virtual_time_backend"]


def virtual_time_backend() -> dict[str, Callable[[], Any]]:
    """anyio ``backend_options`` that run on a looptime loop: a minute costs milliseconds.

    Raises:
        MissingExtraError: looptime is not installed (``pip install 'swarmpod[replay]'``).
    """
    looptime = import_extra("looptime", extra="replay", feature="replaying in virtual time")
    factory: Callable[[], Any] = looptime.new_event_loop
    return {"loop_factory": factory}

"""``--record FILE``: the orchestrator of ``generate`` and ``demo``, recording or not."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final

import aiohttp
from rich.markup import escape

from .._orchestrator import Orchestrator
from ..replay import CassetteRecorder
from ..settings import Settings
from ._console import console

__all__ = ["RECORD_HELP", "orchestrator_for"]

RECORD_HELP: Final = (
    "record every HTTP exchange into a cassette FILE (play it back: swarmpod replay cassette FILE)"
)
"""The help text of ``--record``."""


def orchestrator_for(
    settings: Settings,
    record: Path | None,
    *,
    middlewares: Sequence[aiohttp.ClientMiddlewareType] = (),
    session: aiohttp.ClientSession | None = None,
) -> Orchestrator | CassetteRecorder:
    """An orchestrator on ``session``, or with ``--record`` one that records into a cassette
    (on its own session, with ``middlewares`` after the recording one, so the cassette keeps
    the URLs the engine asked for)."""
    if record is not None:
        return CassetteRecorder(record, settings, on_written=_recorded, middlewares=middlewares)
    return Orchestrator(settings, session=session)


def _recorded(path: Path, exchanges: int) -> None:
    """Say where a cassette went (also after a failed run: that is when it is most useful)."""
    console.print(
        f"recorded {exchanges} HTTP exchange(s) into {escape(str(path))}; "
        f"replay it: swarmpod replay cassette {escape(str(path))}"
    )

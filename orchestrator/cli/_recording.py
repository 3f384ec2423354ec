"""``--record FILE``: the orchestrator of ``generate`` and ``demo``, recording or not."""

from __future__ import annotations

from pathlib import Path
from typing import Final

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


def orchestrator_for(settings: Settings, record: Path | None) -> Orchestrator | CassetteRecorder:
    """An orchestrator, or with ``--record`` one that records into a cassette."""
    if record is None:
        return Orchestrator(settings)
    return CassetteRecorder(record, settings, on_written=_recorded)


def _recorded(path: Path, exchanges: int) -> None:
    """Say where a cassette went (also after a failed run: that is when it is most useful)."""
    console.print(
        f"recorded {exchanges} HTTP exchange(s) into {escape(str(path))}; "
        f"replay it: swarmpod replay cassette {escape(str(path))}"
    )

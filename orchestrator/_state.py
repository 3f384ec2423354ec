"""Where swarmpod keeps its state file (lease journal, budgets) unless StateFile says."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_state_file"]


def default_state_file() -> Path:
    """``$SWARMPOD_STATE_DIR/swarmpod.sqlite3``, else under ``$XDG_STATE_HOME/swarmpod`` or
    ``~/.local/state/swarmpod``.

    >>> default_state_file().name
    'swarmpod.sqlite3'
    """
    explicit = os.environ.get("SWARMPOD_STATE_DIR")
    if explicit:
        return Path(explicit) / "swarmpod.sqlite3"
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "swarmpod" / "swarmpod.sqlite3"

"""The ``swarmpod`` command line, one module per command.

=============  ==========================================================================
``generate``   images from a prompt, on RunPod or the embedded emulator (:mod:`._generate`)
``demo``       a short demo on the embedded emulator, with trace and report (:mod:`._demo`)
``replay``     scenario files and recorded cassettes in virtual time (:mod:`._replay`)
``report``     the HTML lifecycle report of a trace file (:mod:`._report`)
``serve``      the service: the seed's routes and the SwarmUI-compatible API (:mod:`._serve`)
``users``      the service's accounts (:mod:`._users`)
``emulator``   the RunPod + SwarmUI emulator on a port, or your own handler (:mod:`._emulator`)
=============  ==========================================================================

``generate --record FILE`` and ``demo --record FILE`` write every HTTP exchange into a cassette.
Run as ``swarmpod ...`` or ``python -m orchestrator.cli ...``. The command line needs the
``cli`` extra (``pip install 'swarmpod[cli]'``); without it, it says so in one line.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence

from .._extras import EXTRAS

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``swarmpod`` console script; returns the exit status.

    Exits 2 with one line naming ``pip install 'swarmpod[cli]'`` when the ``cli`` extra's
    modules are missing (``pip install swarmpod`` alone installs the library).
    """
    missing = [name for name in EXTRAS["cli"] if not _importable(name)]
    if missing:
        print(
            f"swarmpod: the command line needs the optional dependencies {', '.join(missing)}, "
            "which are not installed: pip install 'swarmpod[cli]'",
            file=sys.stderr,
        )
        return 2
    from ._main import main as run

    return run(argv)


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False

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
Run as ``swarmpod ...`` or ``python -m orchestrator.cli ...``.
"""

from ._main import main as main

__all__ = ["main"]

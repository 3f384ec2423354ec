"""State charts of swarmpod: pure transition models driven by the engine's anyio tasks.

Their pictures are drawn by :mod:`observability.diagrams` into ``statecharts/diagrams/``.
"""

from statemachine.exceptions import TransitionNotAllowed as TransitionNotAllowed

from ._recorder import PathRecorder as PathRecorder
from ._recorder import StateVisit as StateVisit
from .generation import GenerationChart as GenerationChart
from .generation import Outcome as Outcome
from .lease import LeaseChart as LeaseChart

__all__ = [
    "GenerationChart",
    "LeaseChart",
    "Outcome",
    "PathRecorder",
    "StateVisit",
    "TransitionNotAllowed",
]

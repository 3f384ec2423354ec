"""State charts of swarmpod: pure transition models driven by the engine's anyio tasks.

Their pictures are drawn by :mod:`observability.diagrams` into ``statecharts/diagrams/``.
"""

from statemachine.exceptions import TransitionNotAllowed as TransitionNotAllowed

from ._recorder import PathRecorder as PathRecorder
from ._recorder import StateVisit as StateVisit
from ._runtime import Chart as Chart
from .generation import GenerationChart as GenerationChart
from .generation import GenerationStates as GenerationStates
from .generation import Outcome as Outcome
from .worker import WorkerChart as WorkerChart
from .worker import WorkerStates as WorkerStates

__all__ = [
    "Chart",
    "GenerationChart",
    "GenerationStates",
    "Outcome",
    "PathRecorder",
    "StateVisit",
    "TransitionNotAllowed",
    "WorkerChart",
    "WorkerStates",
]

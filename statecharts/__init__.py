"""State charts of swarmpod: pure transition models driven by the engine's anyio tasks."""

from statemachine.exceptions import TransitionNotAllowed as TransitionNotAllowed

from ._diagrams import mermaid as mermaid
from ._diagrams import write_diagrams as write_diagrams
from ._recorder import PathRecorder as PathRecorder
from ._recorder import StateVisit as StateVisit
from ._svg import svg as svg
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
    "mermaid",
    "svg",
    "write_diagrams",
]

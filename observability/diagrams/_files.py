"""The committed diagrams: Mermaid and SVG of every chart, in ``statecharts/diagrams/``."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from statemachine import StateMachine
from statemachine.contrib.diagram import MermaidGraphMachine

import statecharts
from statecharts import GenerationStates, WorkerStates

from ._svg import svg

__all__ = ["CHARTS", "DIAGRAM_DIR", "mermaid", "write_diagrams"]

CHARTS: Final[dict[str, type[StateMachine]]] = {
    "generation": GenerationStates,
    "worker": WorkerStates,
}
"""Every chart drawn, by file name."""
DIAGRAM_DIR: Final = Path(statecharts.__file__).parent / "diagrams"
"""Where the committed diagrams live, beside the charts they picture."""


def mermaid(chart: type) -> str:
    """The Mermaid ``stateDiagram-v2`` source of a chart class."""
    return str(MermaidGraphMachine(chart)()).rstrip() + "\n"  # type: ignore[no-untyped-call]


def write_diagrams(directory: Path = DIAGRAM_DIR) -> list[Path]:
    """Write ``<name>.mmd`` and ``<name>.svg`` for every chart; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, chart in CHARTS.items():
        for path, text in (
            (directory / f"{name}.mmd", mermaid(chart)),
            (directory / f"{name}.svg", svg(chart)),
        ):
            path.write_text(text)
            written.append(path)
    return written

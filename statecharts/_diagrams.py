"""Diagrams generated from the chart classes, so the pictures never drift from the code."""

from __future__ import annotations

from pathlib import Path

from statemachine.contrib.diagram import MermaidGraphMachine

from ._svg import svg
from .generation import GenerationChart
from .lease import LeaseChart

__all__ = ["CHARTS", "DIAGRAM_DIR", "mermaid", "write_diagrams"]

CHARTS = {"generation": GenerationChart, "lease": LeaseChart}
DIAGRAM_DIR = Path(__file__).parent / "diagrams"


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

"""Pictures of the state charts, generated from the chart classes so they never drift.

Mermaid (``stateDiagram-v2``, for the README) and SVG (laid out and drawn in pure Python: a
small layered graph layout, no Graphviz). ``make diagrams`` (``python -m observability.diagrams``)
rewrites ``statecharts/diagrams/``; a test fails when the committed files differ from what the
classes give. Nothing at run time imports this package.
"""

from ._files import mermaid as mermaid
from ._files import write_diagrams as write_diagrams
from ._svg import svg as svg

__all__ = ["mermaid", "svg", "write_diagrams"]

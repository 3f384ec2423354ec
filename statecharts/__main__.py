"""``python -m statecharts``: regenerate the Mermaid and SVG diagrams in statecharts/diagrams/."""

from ._diagrams import write_diagrams

for written in write_diagrams():
    print(written)

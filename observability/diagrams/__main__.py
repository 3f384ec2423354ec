"""``python -m observability.diagrams``: regenerate the diagrams in statecharts/diagrams/."""

from ._files import write_diagrams

for written in write_diagrams():
    print(written)

"""The committed diagrams are exactly what the chart classes generate."""

from __future__ import annotations

import pytest

from statecharts import mermaid
from statecharts._diagrams import CHARTS, DIAGRAM_DIR


@pytest.mark.parametrize("name", sorted(CHARTS))
def test_committed_mermaid_matches_the_chart_class(name: str) -> None:
    committed = (DIAGRAM_DIR / f"{name}.mmd").read_text()
    assert committed == mermaid(CHARTS[name]), "run `make diagrams` and commit the result"


def test_the_generation_diagram_shows_every_state() -> None:
    text = mermaid(CHARTS["generation"])
    for state in ("Idle", "Waking", "Polling", "Ready", "Generating", "ShuttingDown", "Done"):
        assert f'"{state}"' in text


def test_the_readme_embeds_the_current_generation_diagram() -> None:
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert mermaid(CHARTS["generation"]) in readme


def test_the_readme_embeds_the_current_lease_diagram() -> None:
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert mermaid(CHARTS["lease"]) in readme

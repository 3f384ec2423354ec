"""The committed diagrams are exactly what the chart classes generate."""

from __future__ import annotations

import pytest

from observability.diagrams import mermaid
from observability.diagrams._files import CHARTS, DIAGRAM_DIR


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


def test_the_readme_embeds_the_current_worker_diagram() -> None:
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert mermaid(CHARTS["worker"]) in readme


def test_the_runtime_charts_package_does_not_load_the_drawer() -> None:
    import subprocess
    import sys

    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, statecharts; print(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert "statecharts.generation" in loaded
    assert "observability.diagrams" not in loaded
    assert "statemachine.contrib.diagram" not in loaded

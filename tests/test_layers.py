"""The engine knows no OpenTelemetry: observability turns its events into spans and costs."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ORCHESTRATOR = ROOT / "orchestrator"
# The modules that drive generations and workers: they emit domain events and know neither
# OpenTelemetry nor the observability package that listens to them.
DRIVING = [
    ORCHESTRATOR / "engine.py",
    ORCHESTRATOR / "_events.py",
    ORCHESTRATOR / "_progress.py",
    *sorted((ORCHESTRATOR / "workers").glob("*.py")),
    *sorted((ORCHESTRATOR / "runpod").glob("*.py")),
    *sorted((ORCHESTRATOR / "swarmui").glob("*.py")),
]


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports (top-level names, absolute)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize(
    "path", sorted(ORCHESTRATOR.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT))
)
def test_no_module_of_the_engine_package_imports_opentelemetry(path: Path) -> None:
    assert not [name for name in imported(path) if name.split(".")[0] == "opentelemetry"]


@pytest.mark.parametrize("path", DRIVING, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_driving_modules_emit_events_and_import_no_observability(path: Path) -> None:
    assert not [name for name in imported(path) if name.split(".")[0] == "observability"]


def test_the_check_sees_an_opentelemetry_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from opentelemetry import trace\nimport observability.x\n")
    assert imported(module) == {"opentelemetry", "observability.x"}

"""What the README and the code cite is in the repository: the specs/ files and their sections."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
CITED = re.compile(
    r"\b(runpod-api|swarmui-api|worker-protocols)\.md`{0,2}\)?\s?§\s?(\d+(?:\.\d+)*)"
)


def sources() -> list[Path]:
    """Every Python file and Markdown document of the repository (virtualenvs excluded)."""
    found = [ROOT / "README.md", *sorted(SPECS.glob("*.md"))]
    for package in ("orchestrator", "observability", "statecharts", "tests", "benchmarks"):
        found += sorted((ROOT / package).rglob("*.py")) + sorted((ROOT / package).rglob("*.md"))
    return found


def sections(spec: Path) -> set[str]:
    """The numbered sections of a spec (``## 2. Routes`` → 2, ``### 2.1 ...`` → 2.1)."""
    return set(re.findall(r"^#{2,4} (\d+(?:\.\d+)*)\.? ", spec.read_text(), flags=re.MULTILINE))


def test_every_cited_spec_section_exists_in_the_shipped_specs() -> None:
    missing = []
    for path in sources():
        for name, section in CITED.findall(path.read_text()):
            spec = SPECS / f"{name}.md"
            if not spec.exists() or section not in sections(spec):
                missing.append(f"{path.relative_to(ROOT)}: {name}.md §{section}")
    assert not missing


def test_nothing_points_outside_the_repository() -> None:
    offending = []
    for path in sources():
        if path == Path(__file__):
            continue
        text = path.read_text()
        where = path.relative_to(ROOT)
        if "../shared" in text or "/work/" in text or "design.md" in text:
            offending.append(f"{where}: points outside the repository")
        offending += [
            f"{where}: cites specs/{cited}, which is not shipped"
            for cited in re.findall(r"\bspecs/([\w-]+\.md)", text)
            if not (SPECS / cited).exists()
        ]
    assert not offending


def test_the_readme_names_the_license_and_the_specs() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "LICENSE" in readme and "specs/" in readme

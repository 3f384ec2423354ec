"""The suite's own rules: a hung test fails by name, helpers load once, no test times itself."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TESTS = Path(__file__).parent

HUNG = textwrap.dedent(
    """
    import threading

    import anyio
    import pytest


    @pytest.mark.anyio
    async def test_waits_for_an_event_nobody_sets() -> None:
        await anyio.Event().wait()


    @pytest.mark.anyio
    async def test_spins_its_event_loop() -> None:
        while True:  # a callback rescheduling itself at the same instant
            await anyio.sleep(0)


    def test_blocks_on_a_lock_nobody_releases() -> None:
        lock = threading.Lock()
        lock.acquire()
        lock.acquire()


    def test_that_finishes() -> None:
        assert True
    """
)


@pytest.mark.slow
def test_a_hung_test_fails_on_its_own_naming_it_and_the_run_goes_on(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text((TESTS / "conftest.py").read_text())
    (tmp_path / "test_hung.py").write_text(HUNG)
    pytest_args = ["-q", "-p", "no:cacheprovider", "-n", "1", "-o", "timeout=2"]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", *pytest_args, "test_hung.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,  # a guard for this test itself, not a measurement
    )
    assert run.returncode == 1, run.stdout + run.stderr
    summary = run.stdout.splitlines()[-1]
    assert "3 failed, 1 passed" in summary, run.stdout
    assert re.search(
        r"FAILED test_hung.py::test_blocks_on_a_lock_nobody_releases\b.*Timeout", run.stdout
    ), run.stdout
    for name in ("test_waits_for_an_event_nobody_sets", "test_spins_its_event_loop"):
        assert re.search(rf"FAILED test_hung.py::{name}\b", run.stdout), run.stdout
        assert f"crashed while running 'test_hung.py::{name}'" in run.stdout, run.stdout


def test_the_project_sets_a_wall_clock_timeout_for_every_test() -> None:
    import tomllib

    options = tomllib.loads((TESTS.parent / "pyproject.toml").read_text())["tool"]["pytest"]
    assert float(options["ini_options"]["timeout"]) <= 60
    assert options["ini_options"]["timeout_method"] == "signal"  # fails the test, not the run
    # (async tests are timed out from a thread: conftest.pytest_collection_modifyitems)


def test_the_helpers_have_one_import_path() -> None:
    doubled = [
        f"{path.name}:{number}: {line.strip()}"
        for path in sorted(TESTS.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if re.match(r"\s*(from tests[.\s]|import tests\b)", line)
    ]
    assert doubled == [], "import helpers by module name (from support import ...)"
    assert not any(name.startswith("tests.") for name in sys.modules)


def test_no_test_measures_the_wall_clock() -> None:
    """Timing claims live in benchmarks (``make bench``); tests run in virtual time."""
    timed = [
        path.name
        for path in sorted(TESTS.glob("test_*.py"))
        if path.name != Path(__file__).name
        and re.search(r"perf_counter|process_time", path.read_text())
    ]
    assert timed == []

"""``swarmpod replay FILE...``: scenario files and recorded cassettes, in virtual time.

Exit 0 when every verdict passes, 1 when one fails, 2 (before running anything) when a file is
unusable. ``replay cassette FILE...`` reads every file as a cassette whatever its name.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from ..replay import (
    Cassette,
    Scenario,
    load_cassette,
    load_scenario,
    replay_cassette_blocking,
    run_scenario_blocking,
)
from ._command import Command, Subparsers
from ._console import console

__all__ = ["REPLAY"]


def _declare(commands: Subparsers, traced: argparse.ArgumentParser) -> None:
    replay = commands.add_parser(
        "replay",
        help="run scenario files or recorded cassettes in virtual time",
        description="Run scenario files (.toml) against the emulator, or play cassettes "
        "(.jsonl, recorded with --record) back, in virtual time; print each run's chart "
        "paths, timeline and verdict. 'replay cassette FILE...' reads every FILE as a "
        "cassette. Exit 0 = all pass, 1 = a verdict failed, 2 = a file is unusable.",
    )
    replay.add_argument(
        "scenarios",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="scenario files (.toml) or cassettes (.jsonl); a first word 'cassette' reads "
        "every FILE as a cassette",
    )
    replay.add_argument("-q", "--quiet", action="store_true", help="print only the verdicts")


def _quiet_logs(args: argparse.Namespace) -> None:
    """Scenarios fail on purpose: their failures are in the timelines and verdicts, so the
    logs say nothing more unless ``-v``; with ``-q`` only the verdicts are printed."""
    if args.verbose:
        return
    logging.getLogger().setLevel(logging.CRITICAL + 1 if args.quiet else logging.ERROR)


def _run(args: argparse.Namespace) -> int:
    """Run each scenario or cassette on its own virtual-time loop."""
    _quiet_logs(args)
    paths: list[Path] = list(args.scenarios)
    forced = paths[0] == Path("cassette") and len(paths) > 1
    if forced:
        paths = paths[1:]
    runs: list[Scenario | Cassette] = [
        load_cassette(path) if forced or path.suffix == ".jsonl" else load_scenario(path)
        for path in paths
    ]
    failed = 0
    for run in runs:
        if isinstance(run, Cassette):
            wall = time.perf_counter()
            cassette_report = replay_cassette_blocking(run)
            wall = time.perf_counter() - wall
            passed, text = cassette_report.passed, cassette_report.render()
            title = run.source
            if not args.quiet:
                console.print(f"replayed {run.duration:.1f} s of recorded time in {wall:.2f} s")
        else:
            scenario_report = run_scenario_blocking(run)
            passed, text = scenario_report.passed, scenario_report.render()
            title = f"{run.name}  ({run.source})"
        if args.quiet:
            print(f"{'PASS' if passed else 'FAIL'}  {title}")
        else:
            print(text)
        failed += not passed
    return 1 if failed else 0


REPLAY = Command("replay", _declare, _run)
"""``swarmpod replay``."""

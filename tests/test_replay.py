"""Replay scenarios: the library passes, runs are deterministic and fast, bad files are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.replay import ScenarioError, load_scenario, run_scenario

SCENARIOS = Path(__file__).parent / "scenarios"
LIBRARY = sorted(SCENARIOS.glob("*.toml"))


def test_the_library_holds_at_least_25_scenarios() -> None:
    assert len(LIBRARY) >= 25


@pytest.mark.anyio
@pytest.mark.parametrize("path", LIBRARY, ids=[path.stem for path in LIBRARY])
async def test_scenario_passes(path: Path) -> None:
    report = await run_scenario(load_scenario(path))
    assert report.passed, report.render()


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["cold_start_happy_path", "runpod_429_storm_on_status"])
async def test_the_same_scenario_gives_the_same_timeline_twice(name: str) -> None:
    scenario = load_scenario(SCENARIOS / f"{name}.toml")
    first = await run_scenario(scenario)
    second = await run_scenario(scenario)
    assert first.timeline == second.timeline
    assert len(first.timeline) > 5


@pytest.mark.anyio
async def test_a_ten_minute_scenario_runs_on_the_virtual_clock() -> None:
    """Its wall-clock time is measured by ``make bench`` (benchmarks/virtual_time.py)."""
    scenario = load_scenario(SCENARIOS / "ten_minute_session.toml")
    report = await run_scenario(scenario)
    assert float(report.timeline[-1].split("s")[0]) > 420


@pytest.mark.anyio
async def test_a_wrong_expectation_gives_a_fail_verdict_saying_why(tmp_path: Path) -> None:
    path = tmp_path / "wrong.toml"
    path.write_text(
        'name = "expects the impossible"\n[endpoint]\ncold_start_s = 5\n'
        '[[requests]]\nparams = { prompt = "x" }\nexpect = { state = "Failed" }\n'
    )
    report = await run_scenario(load_scenario(path))
    assert not report.passed
    assert "ended Done, expected Failed" in report.render()
    assert "verdict: FAIL" in report.render()


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        (
            'name = "x"\n[endpoint]\ncold_start_s = 5\nwarp = 9\n',
            4,
            "unknown EndpointConfig field 'warp'",
        ),
        (
            'name = "x"\n[[requests]]\nparams = {}\n[[faults]]\nkind = "endpoint.explode"\n',
            5,
            "unknown fault kind",
        ),
        (
            'name = "x"\n[[requests]]\nparams = {}\n[[faults]]\nkind = "worker0.no_images"\n',
            5,
            "unknown fault kind",
        ),
        (
            'name = "x"\n[[requests]]\nparams = {}\n[[faults]]\nkind = "worker2.http_status"\n',
            5,
            "unknown fault kind",
        ),
        (
            'name = "x"\n[[requests]]\nparams = {}\nimages = 0\n',
            4,
            "'images' must be an integer >= 1",
        ),
        (
            'name = "x"\n[[requests]]\nexpect = { state = "Exploded" }\n',
            3,
            "expect.state must be one of",
        ),
        ('name = "x"\n[settings]\nMaxConcurrent = 0\n[[requests]]\n', 3, "MaxConcurrent"),
        ('name = "x"\n[endpoint]\nmax_workers = -1\n[[requests]]\n', 2, "EndpointConfig"),
        ('name = "x"\n[[requests]\n', 2, "not TOML"),
        ('name = "x"\n', None, "at least one [[requests]]"),
        ("[[requests]]\n", None, "'name'"),
    ],
)
def test_a_bad_scenario_is_refused_with_file_line_and_reason(
    tmp_path: Path, text: str, line: int | None, reason: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert caught.value.file == str(path)
    assert caught.value.line == line
    assert reason in caught.value.reason
    assert str(caught.value).startswith(f"{path}:{line}" if line else str(path))


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "nope.toml")


def test_the_replay_command_exits_2_on_a_bad_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('name = "x"\n')
    assert main(["replay", str(path)]) == 2
    assert "at least one [[requests]]" in capsys.readouterr().err

"""A user's first hour with the command line: --version, --out, errors told once, clean logs.

The commands run whole through ``cli.main`` (their own event loop, made a looptime loop here,
so the embedded emulator's cold start costs no wall time).
"""

from __future__ import annotations

import io
import logging
import os
import select
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import looptime
import pytest
from rich.console import Console
from rich.progress import Progress

from observability import Telemetry
from orchestrator import cli
from orchestrator.cli import _main
from orchestrator.cli._generate import generate
from orchestrator.cli._main import build_parser, configure_cli_logging
from orchestrator.cli._tracing import collector_unreachable, configure_telemetry


@pytest.fixture(autouse=True)
def no_configured_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own RunPod settings must not leak into these tests."""
    for name in list(os.environ):
        if name.startswith(("SWARMPOD_", "RUNPOD_", "OTEL_")) and name != "SWARMPOD_STATE_DIR":
            monkeypatch.delenv(name)


@pytest.fixture
def virtual_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ``anyio.run`` of a command runs on a looptime loop."""
    real_run = anyio.run

    def run(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        kwargs["backend_options"] = {"loop_factory": looptime.new_event_loop}
        return real_run(func, *args, **kwargs)

    monkeypatch.setattr(anyio, "run", run)


@pytest.fixture
def listener() -> Iterator[tuple[str, socket.socket]]:
    """A RunPod base URL whose port only counts connections (nothing answers)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield f"http://127.0.0.1:{server.getsockname()[1]}/v2", server


def connections(server: socket.socket) -> int:
    readable, _, _ = select.select([server], [], [], 0)
    return len(readable)


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_version_names_the_installed_swarmpod(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"swarmpod {_main.version()}"
    assert _main.version()[0].isdigit()


@pytest.mark.parametrize("command", ["generate", "demo"])
def test_an_unwritable_out_fails_in_one_line_before_any_runpod_call(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    listener: tuple[str, socket.socket],
    command: str,
) -> None:
    base_url, server = listener
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    argv = [command, "--out", str(blocker / "images")]
    if command == "generate":
        argv += ["a fox", "--endpoint-id", "ep", "--base-url", base_url]
    status = cli.main(argv)
    out, err = capsys.readouterr()
    assert status == 2
    assert lines(err) == [
        "error (SettingsError): Setting --out (from command line): cannot write images to "
        f"{blocker / 'images'}: Not a directory"
    ]
    assert out == ""
    assert connections(server) == 0  # RunPod was never called: nothing paid for


@pytest.mark.anyio
async def test_images_that_cannot_be_written_after_all_are_kept_and_the_error_says_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # the check passed earlier; now writing fails (say, the disk filled)
    args = build_parser().parse_args(
        ["generate", "a fox", "--images", "2", "--seed", "3", "--out", str(blocker / "out")]
    )
    assert await generate(args) == 2
    out, err = capsys.readouterr()
    kept = [Path(line) for line in out.split()]
    assert len(kept) == 2 and all(path.is_file() for path in kept)
    assert kept[0].parent.name.startswith("swarmpod-images-")
    assert [path.name.split("-seed")[1] for path in kept] == ["3.png", "4.png"]
    assert f"the 2 image(s) are kept in {kept[0].parent}" in " ".join(err.split())


def test_an_error_is_printed_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], virtual_time: None
) -> None:
    # the worker's SwarmUI refuses the model; the engine's log, the progress line and the
    # command could each say so
    status = cli.main(["generate", "a fox", "--model", "no-such-model", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("are you sure that model name is correct?") == 1
    assert lines(err)[-1].startswith("error (GenerationFailedError, phase generating): ")


def test_the_engines_account_of_a_failure_shows_with_verbose(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], virtual_time: None
) -> None:
    argv = ["-v", "generate", "a fox", "--model", "no-such-model", "--out", str(tmp_path)]
    assert cli.main(argv) == 2
    assert "generation failed in generating" in capsys.readouterr().err


def test_log_lines_go_through_the_progress_display_not_around_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100)
    configure_cli_logging(0)
    try:
        with Progress(console=console) as progress:
            progress.add_task("a fox", total=1.0)
            logging.getLogger("swarmpod.settings").warning("a warning mid-generation")
    finally:
        logging.getLogger().handlers.clear()
    assert "a warning mid-generation" in screen.getvalue()  # printed above the bar by rich
    assert "a warning mid-generation" not in capsys.readouterr().err  # not over it, raw


SCENARIOS = Path(__file__).parent / "scenarios"


def test_replay_quiet_prints_only_the_verdicts(capsys: pytest.CaptureFixture[str]) -> None:
    # these scenarios fail generations on purpose: the engine and the emulator log about it
    chosen = ["bad_base64.toml", "boot_crash.toml", "runpod_wrong_key.toml", "no_images.toml"]
    files = [str(SCENARIOS / name) for name in chosen]
    assert cli.main(["replay", "-q", *files]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert [line.split()[0] for line in lines(out)] == ["PASS"] * len(files)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens once it is closed


def test_an_unreachable_otlp_collector_costs_one_line_and_no_export(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    virtual_time: None,
) -> None:
    collector = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector)
    asked: list[object] = []
    configure = Telemetry.configure

    def spy(*args: Any, **kwargs: Any) -> Telemetry:
        asked.append(kwargs.get("otlp"))
        return configure(*args, **kwargs)

    monkeypatch.setattr(Telemetry, "configure", spy)
    assert cli.main(["generate", "a fox", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert asked == [False]  # no exporter to retry for its whole timeout at the end
    otlp_lines = [line for line in lines(err) if "OTLP" in line or "opentelemetry" in line]
    assert otlp_lines == [
        f"OTLP collector at {collector} unreachable (Connection refused): spans and metrics "
        "are not exported this run"
    ]


def test_a_reachable_collector_is_exported_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, listener: tuple[str, socket.socket]
) -> None:
    base_url, _ = listener
    url = base_url.removesuffix("/v2")
    assert collector_unreachable(url) is None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
    args = build_parser().parse_args(["generate", "a fox", "--out", str(tmp_path)])
    asked: list[object] = []

    def configure(**kwargs: Any) -> Telemetry:
        asked.append(kwargs["otlp"])
        return Telemetry.disabled()

    monkeypatch.setattr(Telemetry, "configure", configure)
    configure_telemetry(args)
    assert asked == [True]

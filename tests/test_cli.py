"""The swarmpod command line: generate and demo on the embedded emulator, and its errors."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from orchestrator import cli
from orchestrator.cli._demo import demo, write_demo_report
from orchestrator.cli._emulator import emulator_config
from orchestrator.cli._generate import generate
from orchestrator.cli._images import write_images
from orchestrator.cli._main import build_parser, start_telemetry


@pytest.fixture(autouse=True)
def no_configured_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own RunPod settings must not leak into these tests."""
    import os

    for name in list(os.environ):
        if name.startswith(("SWARMPOD_", "RUNPOD_")):
            monkeypatch.delenv(name)


def pngs(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.png"))


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(argv)


@pytest.mark.anyio
async def test_generate_without_an_endpoint_uses_the_embedded_emulator_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = parse(
        "generate",
        "a red fox",
        "--images",
        "2",
        "--width",
        "320",
        "--height",
        "192",
        "--seed",
        "11",
        "--param",
        "cfgscale=6.5",
        "--out",
        str(tmp_path),
    )
    assert await generate(args) == 0

    out, err = capsys.readouterr()
    assert "embedded emulator" in err
    assert "cold start" in err and "2 image(s) written" in err
    written = pngs(tmp_path)
    assert [path.name.split("-seed")[1] for path in written] == ["11.png", "12.png"]
    assert out.split() == [str(path) for path in written]
    for path in written:
        with Image.open(io.BytesIO(path.read_bytes())) as image:
            assert image.size == (320, 192)


@pytest.mark.anyio
async def test_the_demo_writes_six_images_and_shows_a_warm_reuse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await demo(parse("demo", "--out", str(tmp_path))) == 0
    assert len(pngs(tmp_path)) == 6
    err = capsys.readouterr().err
    assert err.count("│ cold ") == 2
    assert err.count("│ warm ") == 1


def test_images_are_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "x-00-seed5.png").write_bytes(b"old")
    from orchestrator._result import GenerationResult, PhaseTimings
    from orchestrator.swarmui import GeneratedImage

    image = GeneratedImage(
        data=b"new", mime="image/png", width=1, height=1, seed=5, batch_index=0, metadata=None
    )
    result = GenerationResult(
        images=(image,),
        cold_start=False,
        timings=PhaseTimings(0, 0, 0, 0, 0, 0, 0),
        path=(),
        worker_id=None,
        job_ids=(),
        runpod_delay_ms=None,
    )
    (written,) = write_images(result, tmp_path, stem="x")
    assert written.name == "x-00-seed5-1.png"
    assert (tmp_path / "x-00-seed5.png").read_bytes() == b"old"


def test_a_bad_setting_exits_2_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["generate", "a fox", "--endpoint-id", "bad id!"]) == 2
    assert "EndpointId" in capsys.readouterr().err


# -- swarmpod emulator: hosting your own handler ---------------------------------------------

HANDLER = Path(__file__).parent / "handlers" / "sync_handler.py"


def test_emulator_handler_flags_become_the_hosted_worker_config() -> None:
    args = parse(
        "emulator",
        "--handler",
        str(HANDLER),
        "--handler-python",
        "/opt/py/bin/python",
        "--handler-env",
        "MODEL_DIR=/models",
        "--handler-env",
        "DEBUG=1",
        "--ping-interval",
        "2",
        "--protocol",
        "v1",
    )
    config = emulator_config(args)
    endpoint = config.endpoints["local-ep"]
    assert endpoint.handler_command == ("/opt/py/bin/python", str(HANDLER.resolve()))
    assert endpoint.handler_env == {"MODEL_DIR": "/models", "DEBUG": "1"}
    assert endpoint.ping_interval_s == 2.0
    assert endpoint.cold_start_s == 0.0  # starting the process is the cold start


def test_emulator_handler_command_is_split_like_a_shell() -> None:
    args = parse("emulator", "--handler-command", "python -m 'my app' --flag")
    endpoint = emulator_config(args).endpoints["local-ep"]
    assert endpoint.handler_command == ("python", "-m", "my app", "--flag")


def test_without_a_handler_the_built_in_image_runs() -> None:
    endpoint = emulator_config(parse("emulator")).endpoints["local-ep"]
    assert endpoint.handler_command is None
    assert endpoint.protocol == "v1"
    assert endpoint.cold_start_s == 20.0


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--handler", "no/such/handler.py"], "--handler"),
        (["--handler", str(HANDLER), "--handler-env", "NOEQUALS"], "KEY=VALUE"),
        (["--handler", str(HANDLER), "--handler-env", "RUNPOD_POD_ID=x"], "RUNPOD_POD_ID"),
        (["--ping-interval", "0.1", "--handler", str(HANDLER)], "ping_interval_s"),
    ],
)
def test_bad_emulator_flags_exit_2_with_the_reason(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["emulator", *argv]) == 2
    assert says in capsys.readouterr().err


def test_serve_refuses_a_bad_config_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "serve.toml"
    config.write_text("[backends.main]\nMaxConcurrent = 3\n")
    assert cli.main(["serve", "--config", str(config)]) == 2
    assert "backends.main.EndpointId" in capsys.readouterr().err


@pytest.mark.anyio
async def test_the_demo_leaves_a_trace_file_and_the_lifecycle_report(tmp_path: Path) -> None:
    args = parse("demo", "--out", str(tmp_path))
    telemetry = start_telemetry(args)
    assert telemetry is not None
    assert await demo(args) == 0
    telemetry.shutdown()
    write_demo_report(args)

    trace = tmp_path / "trace.jsonl"
    lines = trace.read_text().splitlines()
    names = [json.loads(line)["name"] for line in lines]
    assert sum(name.startswith("Generation:") for name in names) == 3
    report = (tmp_path / "report.html").read_text()
    assert report.lower().startswith("<!doctype html>")
    assert report.count('class="bar"') > 10


def test_report_writes_a_page_from_a_trace_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from observability import Telemetry

    trace = tmp_path / "run.jsonl"
    telemetry = Telemetry.configure(otlp=False, trace_file=trace)
    with telemetry.tracer.start_as_current_span("Generation:m", attributes={"swarmpod.model": "m"}):
        pass
    telemetry.shutdown()

    output = tmp_path / "out" / "report.html"
    assert cli.main(["report", str(trace), "-o", str(output)]) == 0
    assert output.is_file() and "1 generation(s)" in capsys.readouterr().err


def test_report_of_a_missing_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["report", str(tmp_path / "nope.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_an_unwritable_trace_file_exits_2_naming_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    trace = blocker / "trace.jsonl"
    assert cli.main(["generate", "x", "--trace-file", str(trace), "--out", str(tmp_path)]) == 2
    assert "--trace-file" in capsys.readouterr().err

"""Every code block of the README is checked, so the examples cannot rot.

How each kind of block is checked (a block no rule knows fails, naming its line):

- ``python``: run. A block that ends in ``anyio.run(main)`` runs as a script; a fragment with
  a top-level ``await`` / ``async with`` runs as the body of a coroutine, given the names the
  README defined before it. Blocks that need RunPod run against the emulator, on the virtual
  clock (``RUNPOD_ENDPOINT_ID``, ``RUNPOD_API_KEY`` and ``SWARMPOD_RUNPOD_BASE_URL`` point at
  it); the runpod SDK block runs with the SDK's interpreter against an emulator on the real
  clock, its ``127.0.0.1:8000`` replaced by the emulator's address.
- ``toml``: loaded as what it is (a service config, a scenario); the scenario is replayed.
- ``sh``: shell commands, one per line (``\\`` continues a line, ``#`` starts a comment, ``<``
  redirects). ``swarmpod`` lines are parsed by swarmpod's own argument parser, and a ``replay``
  of files in the repository is run; ``make`` targets exist in the Makefile; ``pip install``
  names extras that pyproject.toml declares; exported variables are ones swarmpod or
  OpenTelemetry reads; ``docker compose -f FILE`` names a file in the repository;
  ``xdg-open`` (opens a browser) is not run.
- ``mermaid``: the diagram generated from one of the chart classes, as it is now.
- ``text``: the layout tree names paths that exist and every package of ``orchestrator/``; the
  span tree names the spans and root attributes of a real generation.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import glob
import inspect
import os
import re
import shlex
import subprocess
import tomllib
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import anyio
import looptime
import pytest

from observability import Telemetry
from observability.diagrams import mermaid
from observability.diagrams._files import CHARTS
from orchestrator import Orchestrator, Settings
from orchestrator.cli._main import build_parser, main
from orchestrator.emulator import Emulator, EmulatorConfig, EndpointConfig
from orchestrator.replay import load_scenario, run_scenario
from orchestrator.service import ServiceConfig

ROOT: Final = Path(__file__).resolve().parent.parent
README: Final = ROOT / "README.md"
ENDPOINT: Final = "readme-ep"
KEY: Final = "readme-key"


@dataclass(frozen=True)
class Block:
    """A fenced code block of the README: the line of its opening fence, its language, text."""

    line: int
    lang: str
    text: str

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.lang or 'no language'})"

    def has(self, snippet: str) -> bool:
        return snippet in self.text


def readme_blocks() -> list[Block]:
    text = README.read_text()
    return [
        Block(text[: match.start()].count("\n") + 1, match[1], match[2])
        for match in re.finditer(r"^```(\S*)\n(.*?)^```", text, re.M | re.S)
    ]


BLOCKS: Final = readme_blocks()
SLOW_SNIPPETS: Final = ("import runpod",)


def _param(block: Block) -> Any:
    slow = block.lang == "python" and any(block.has(s) for s in SLOW_SNIPPETS)
    return pytest.param(block, id=f"L{block.line}-{block.lang or 'none'}", marks=_marks(slow))


def _marks(slow: bool) -> list[pytest.MarkDecorator]:
    return [pytest.mark.slow] if slow else []


@pytest.fixture
def readme_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A clean environment in an empty directory: no developer's RunPod or OTLP settings."""
    for name in list(os.environ):
        if name.startswith(("SWARMPOD_", "RUNPOD_", "OTEL_")) and name != "SWARMPOD_STATE_DIR":
            monkeypatch.delenv(name)
    monkeypatch.setenv("RUNPOD_ENDPOINT_ID", ENDPOINT)
    monkeypatch.setenv("RUNPOD_API_KEY", KEY)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@contextlib.asynccontextmanager
async def emulator_for_readme(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Emulator]:
    """The emulator the README's blocks talk to, its URL in ``SWARMPOD_RUNPOD_BASE_URL``."""
    config = EmulatorConfig(
        endpoints={ENDPOINT: EndpointConfig(cold_start_s=30.0)}, api_keys=(KEY,)
    )
    async with Emulator(config) as emulator:
        monkeypatch.setenv("SWARMPOD_RUNPOD_BASE_URL", emulator.base_url)
        yield emulator


def on_virtual_clock(function: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return anyio.run(function, backend_options={"loop_factory": looptime.new_event_loop})


async def run_fragment(block: Block, names: dict[str, Any]) -> dict[str, Any]:
    """Run a block with top-level ``await`` as a coroutine's body, in ``names``."""
    code = compile(block.text, str(block), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, names)
    if inspect.iscoroutine(result):
        await result
    return names


# --- python ----------------------------------------------------------------------------------


def check_library_example(
    block: Block, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("swarmpod.toml").write_text(
        "# the README's settings file; the environment says the rest\n"
    )
    real_run = anyio.run

    def run_beside_the_emulator(main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        async def beside() -> Any:
            async with emulator_for_readme(monkeypatch):
                return await main()

        return real_run(beside, backend_options={"loop_factory": looptime.new_event_loop})

    monkeypatch.setattr(anyio, "run", run_beside_the_emulator)
    exec(compile(block.text, str(block), "exec"), {"__name__": "readme"})
    lines = capsys.readouterr().out.splitlines()
    assert lines[-3].split()[:3] == ["42", "1024", "1024"]  # seed, width, height of image 1
    assert lines[-2].split()[:3] == ["43", "1024", "1024"]
    assert lines[-1].startswith("True ")  # cold start
    assert any(line.startswith("booting ") for line in lines)  # progress: stage, message


def check_prewarm_fragment(
    block: Block, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def run() -> None:
        async with emulator_for_readme(monkeypatch) as emulator:
            settings = Settings.load(overrides={"WorkerProtocol": "v2"})  # leases, known
            await run_fragment(block, {"Orchestrator": Orchestrator, "settings": settings})
            assert len(emulator.endpoint(ENDPOINT).jobs) == 2  # prewarm(2) asked for two

    on_virtual_clock(run)
    assert "booting=2" in capsys.readouterr().out


def check_emulator_faults_fragment(
    block: Block, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def run() -> dict[str, Any]:
        return await run_fragment(block, {})

    names = on_virtual_clock(run)
    faults = names["endpoint"].faults
    assert [faults.take("run") is not None for _ in range(3)] == [True, True, False]


def check_sdk_example(
    block: Block, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sdk_env import sdk_env, sdk_python

    assert "127.0.0.1:8000" in block.text
    config = EmulatorConfig(
        endpoints={"local-ep": EndpointConfig(cold_start_s=0.2, queue_delay_s=0.0)},
        api_keys=("emulator-key",),
    )

    async def run() -> subprocess.CompletedProcess[bytes]:
        async with Emulator(config) as emulator:
            address = emulator.base_url.removeprefix("http://").removesuffix("/v2")
            script = block.text.replace("127.0.0.1:8000", address)
            return await anyio.run_process(
                [str(sdk_python()), "-c", script], env=sdk_env(), check=False
            )

    # the SDK sleeps on the wall clock: so does this emulator
    done = anyio.run(run, backend_options={"loop_factory": asyncio.new_event_loop})
    assert done.returncode == 0, done.stderr.decode()
    assert "worker_id" in done.stdout.decode()


def check_cassette_mocks_example(
    block: Block, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)  # the example names a cassette of this repository
    names: dict[str, Any] = {"__name__": "readme"}
    exec(compile(block.text, str(block), "exec"), names)
    on_virtual_clock(names["test_a_wakeup_completes"])
    assert "keepalive" in capsys.readouterr().out  # what the recording did next


def check_telemetry_fragment(
    block: Block, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def run() -> None:
        async with emulator_for_readme(monkeypatch):
            await run_fragment(block, {})

    on_virtual_clock(run)
    assert capsys.readouterr().out.startswith("True GenerationCost(")
    spans = Path("trace.jsonl").read_text()
    assert '"name":"Generation:default"' in spans.replace(" ", "")


PYTHON_CHECKS: Final[list[tuple[str, Callable[..., None]]]] = [
    ('Settings.load("swarmpod.toml")', check_library_example),
    ("await orch.prewarm(", check_prewarm_fragment),
    ("endpoint.swarm_faults.invalid_session", check_emulator_faults_fragment),
    ("import runpod", check_sdk_example),
    ("cassette_mocks(", check_cassette_mocks_example),
    ('Telemetry.configure(trace_file="trace.jsonl")', check_telemetry_fragment),
]


# --- toml ------------------------------------------------------------------------------------


def check_toml(block: Block) -> None:
    path = Path("block.toml")
    path.write_text(block.text)
    if "[[requests]]" in block.text:
        report = on_virtual_clock(lambda: run_scenario(load_scenario(path)))
        assert report.passed, report.render()
    elif "[backends." in block.text:
        config = ServiceConfig.load(path)
        assert list(config.backends) == ["main"]
        assert config.backends["main"].endpoint_id == "abc123"
    else:
        pytest.fail(f"{block}: a TOML block no check knows; add one to tests/test_readme.py")


# --- sh --------------------------------------------------------------------------------------

_NOT_RUN: Final = {"xdg-open": "opens a browser", "git": "clones from the network"}
_VARIABLE: Final = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")


def shell_commands(block: Block) -> Iterator[list[str]]:
    """Each command of a shell block as words: continuations joined, comments and redirects
    dropped, the block's own variables (``export C=...`` used as ``$C`` later) expanded."""
    text = block.text.replace("\\\n", " ")
    local = {
        match[1]: match[2]
        for match in re.finditer(r"^export ([A-Z][A-Z0-9_]*)=(\S+)", text, re.M)
        if f"${match[1]}" in text
    }
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if "<" in words:
            words = words[: words.index("<")]
        for name, value in local.items():
            words = [word.replace(f"${name}", value) for word in words]
        words = [w for w in words if not (w.startswith(tuple(f"{n}=" for n in local)))]
        if words and words != ["export"]:
            yield words


def _known_variable(name: str) -> bool:
    return name.startswith(("SWARMPOD_", "OTEL_")) or name in (
        "RUNPOD_API_KEY",
        "RUNPOD_ENDPOINT_ID",
    )


def _make_targets() -> set[str]:
    return set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))


def _extras() -> set[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(pyproject["project"]["optional-dependencies"])


def check_command(words: list[str]) -> None:
    while words and (assignment := _VARIABLE.match(words[0])):  # NAME=value command ...
        assert _known_variable(assignment[1]), f"{assignment[1]} is read by nobody"
        words = words[1:]
    program, args = words[0], words[1:]
    if program == "export":
        for exported in args:
            match = _VARIABLE.match(exported)
            assert match and _known_variable(match[1]), exported
    elif program == "make":
        assert set(args) <= _make_targets(), args
    elif program == "pip":
        assert args[0] == "install"
        for spec in args[1:]:
            match = re.fullmatch(r"swarmpod(?:\[([\w,]+)\])?", spec)
            assert match, spec
            assert set((match[1] or "").split(",")) - {""} <= _extras(), spec
    elif Path(program).name == "swarmpod":
        check_swarmpod(args)
    elif program == "docker":
        assert args[:2] == ["compose", "-f"] and (ROOT / args[2]).is_file(), args
    elif program not in _NOT_RUN:
        pytest.fail(f"{program}: a command no check knows; add one to tests/test_readme.py")


def check_swarmpod(args: list[str]) -> None:
    expanded = [match for arg in args for match in (sorted(glob.glob(arg, root_dir=ROOT)) or [arg])]
    parsed = build_parser().parse_args(expanded)  # exits 2 on anything it does not take
    if parsed.command == "replay":
        files = [p for p in parsed.scenarios if p != Path("cassette")]
        if len(files) == 1 and (ROOT / files[0]).is_file():
            with contextlib.chdir(ROOT):
                assert main(expanded) == 0


# --- mermaid and text ------------------------------------------------------------------------


def check_mermaid(block: Block) -> None:
    generated = {name: mermaid(chart) for name, chart in CHARTS.items()}
    assert block.text in generated.values(), "run `make diagrams` and paste the diagram"


def check_layout_tree(block: Block) -> None:
    listed: set[str] = set()
    parent = ""
    for line in block.text.splitlines():
        indent = len(line) - len(line.lstrip())
        name = line.split()[0] if line.strip() else ""
        if indent == 0 and name:
            parent = name
            listed.add(name)
        elif indent == 2 and re.fullmatch(r"[\w.]+/?", name):
            listed.add(parent + name)
    missing = sorted(path for path in listed if not (ROOT / path).exists())
    assert missing == []
    packages = {
        f"orchestrator/{p.parent.name}/" for p in (ROOT / "orchestrator").glob("*/__init__.py")
    }
    assert packages <= listed, f"not in the layout: {sorted(packages - listed)}"


def check_span_tree(block: Block) -> None:
    telemetry = Telemetry.configure(in_memory=True, otlp=False)

    async def generate() -> None:
        config = EmulatorConfig(endpoints={ENDPOINT: EndpointConfig()}, api_keys=(KEY,))
        async with Emulator(config) as emulator:
            settings = Settings.load(
                env={},
                overrides={
                    "EndpointId": ENDPOINT,
                    "RunPodApiKey": KEY,
                    "RunPodBaseUrl": emulator.base_url,
                    "IdleTimeoutSec": 0,
                },
            )
            async with Orchestrator(settings, telemetry=telemetry) as orch:
                await orch.generate({"prompt": "a fox", "model": "m"})

    try:
        on_virtual_clock(generate)
        telemetry.flush()
        spans = telemetry.finished_spans()
    finally:
        telemetry.shutdown()
    names = {span.name for span in spans}
    columns = [re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in block.text.splitlines()]
    for line, cells in zip(block.text.splitlines(), columns, strict=True):
        if line.startswith((" ", "\t")):
            continue
        listed = cells[0].removeprefix("├─ ").removeprefix("└─ ")
        alternatives = [_name_pattern(alternative) for alternative in listed.split(" | ")]
        assert any(alt.fullmatch(name) for alt in alternatives for name in names), listed
    (root,) = (span for span in spans if span.name.startswith("Generation:"))
    described = " ".join(cells[-1] for cells in columns[:3]).split("; on failure")[0]
    for item in described.replace("swarmpod.", "").split(", "):
        for attribute in _braces(item.strip().rstrip(",")):
            assert f"swarmpod.{attribute}" in (root.attributes or {}), attribute


def _name_pattern(listed: str) -> re.Pattern[str]:
    """``Ready:<worker id>`` as a pattern in which each ``<...>`` stands for one word."""
    return re.compile(r"\S+".join(re.escape(part) for part in re.split(r"<[^>]+>", listed)))


def _braces(text: str) -> list[str]:
    match = re.search(r"\{([a-z_,]+)\}", text)
    if match is None:
        return [text]
    return [text[: match.start()] + part + text[match.end() :] for part in match[1].split(",")]


def check_text(block: Block) -> None:
    if block.text.startswith("orchestrator/"):
        check_layout_tree(block)
    elif block.text.startswith("Generation:<model>"):
        check_span_tree(block)
    else:
        pytest.fail(f"{block}: a text block no check knows; add one to tests/test_readme.py")


# --- the test --------------------------------------------------------------------------------


def test_the_readme_has_code_blocks_of_every_kind_checked_here() -> None:
    assert {block.lang for block in BLOCKS} == {"sh", "python", "toml", "mermaid", "text"}


@pytest.mark.parametrize("block", [_param(block) for block in BLOCKS])
def test_readme_block(
    block: Block,
    readme_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if block.lang == "python":
        checks = [check for snippet, check in PYTHON_CHECKS if block.has(snippet)]
        assert len(checks) == 1, f"{block}: no check (or several) knows this Python block"
        checks[0](block, monkeypatch, capsys)
    elif block.lang == "toml":
        check_toml(block)
    elif block.lang == "sh":
        for words in shell_commands(block):
            check_command(words)
    elif block.lang == "mermaid":
        check_mermaid(block)
    elif block.lang == "text":
        check_text(block)
    else:
        pytest.fail(f"{block}: say its language (sh, python, toml, mermaid or text)")

"""``pip install swarmpod`` with no extras: the library works; each extra's absence is named.

The no-extras environment is ``.venv-core`` (``make core-venv``, see core_env.py): swarmpod
installed from this working tree with only the core dependencies of pyproject.toml. Its
processes run on the real clock; the emulator they generate against runs in another process.
"""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import textwrap
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from core_env import ROOT, core_python

from orchestrator._extras import EXTRAS, MissingExtraError, import_extra

pytestmark = pytest.mark.slow

OPTIONAL_MODULES = (
    "rich",
    "looptime",
    "cryptography",
    "opentelemetry.exporter.otlp",
    "google.protobuf",
    "aioresponses",
    "psycopg",
    "psycopg_pool",
)

EMULATOR = textwrap.dedent(
    """
    import anyio, sys
    from orchestrator.emulator import Emulator, EmulatorConfig, EndpointConfig

    async def main() -> None:
        config = EmulatorConfig(
            endpoints={"core-ep": EndpointConfig(cold_start_s=0.3, protocol="v2")},
            api_keys=("core-key",),
        )
        async with Emulator(config) as emulator:
            print(emulator.base_url, flush=True)
            await anyio.to_thread.run_sync(sys.stdin.read)  # until the test closes stdin

    anyio.run(main)
    """
)

GENERATE = textwrap.dedent(
    """
    import sys, anyio
    from orchestrator import Orchestrator, Settings

    async def main() -> None:
        settings = Settings.load(env={}, overrides={
            "EndpointId": "core-ep", "RunPodApiKey": "core-key", "RunPodBaseUrl": sys.argv[1],
            "StateFile": ":memory:", "IdleTimeoutSec": 0, "PollIntervalMs": 200,
        })
        async with Orchestrator(settings) as orch:
            result = await orch.generate(
                {"prompt": "a fox", "width": 64, "height": 64, "steps": 2, "seed": 3}, images=2
            )
        print(len(result.images), [image.seed for image in result.images],
              result.images[0].data[:8] == b"\\x89PNG\\r\\n\\x1a\\n", result.cold_start)

    anyio.run(main)
    """
)


def run_core(code: str, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with the no-extras interpreter, outside the source tree."""
    return subprocess.run(
        [str(core_python()), "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=core_python().parent,
        check=False,
    )


@pytest.fixture(scope="module")
def emulator_url() -> Iterator[str]:
    """A RunPod emulator running in a process of its own (the full environment)."""
    with subprocess.Popen(
        [sys.executable, "-c", EMULATOR],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    ) as process:
        assert process.stdout is not None and process.stdin is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        try:
            yield url
        finally:
            process.stdin.close()
            process.wait(timeout=30)


def test_no_extra_is_installed_in_the_core_environment() -> None:
    probe = "import importlib.util as u, sys; print([m for m in sys.argv[1:] if u.find_spec(m)])"
    modules = [m for m in OPTIONAL_MODULES if "." not in m]
    found = run_core(probe, *modules, "opentelemetry")
    assert found.returncode == 0, found.stderr
    assert found.stdout.split() == ["['opentelemetry']"]  # only the core's API and SDK


def test_the_library_imports_without_any_extra() -> None:
    code = (
        "import sys, orchestrator, orchestrator.emulator, orchestrator.replay, "
        "orchestrator.models, observability, statecharts\n"
        f"print(sorted(m for m in {OPTIONAL_MODULES!r} if m in sys.modules))"
    )
    imported = run_core(code)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == "[]"


def test_a_generation_against_a_running_emulator_works_without_any_extra(
    emulator_url: str,
) -> None:
    generated = run_core(GENERATE, emulator_url)
    assert generated.returncode == 0, generated.stderr
    assert generated.stdout.split() == ["2", "[3,", "4]", "True", "True"]


@pytest.mark.parametrize(
    ("code", "extra"),
    [
        ("import orchestrator.service", "service"),
        ("import orchestrator.accounts", "service"),
        (
            "from orchestrator.replay import run_scenario_blocking, Scenario\n"
            "run_scenario_blocking(None)",
            "replay",
        ),
        (
            "from orchestrator.replay import cassette_mocks\nwith cassette_mocks('x.jsonl'): pass",
            "testing",
        ),
        ("from observability import Telemetry\nTelemetry.configure(otlp=True)", "otlp"),
        ("from orchestrator.store import PostgresStore", "postgres"),
    ],
)
def test_a_missing_extra_is_named_with_the_command_that_installs_it(code: str, extra: str) -> None:
    failed = run_core(code)
    assert failed.returncode == 1
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith("orchestrator._extras.MissingExtraError: ")
    assert last.endswith(f"pip install 'swarmpod[{extra}]'")


def test_import_extra_reraises_a_broken_install_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(name: str) -> None:
        raise ModuleNotFoundError("No module named 'six'", name="six")

    monkeypatch.setattr("importlib.import_module", broken)
    with pytest.raises(ModuleNotFoundError) as raised:
        import_extra("rich", extra="cli", feature="the CLI")
    assert not isinstance(raised.value, MissingExtraError)


def _requirements(extra: str, table: dict[str, list[str]], seen: set[str]) -> Iterator[str]:
    """The distributions ``extra`` brings, following ``swarmpod[...]`` self-references."""
    seen.add(extra)
    for requirement in table[extra]:
        name = re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower()
        if name == "swarmpod":
            inner = requirement[requirement.index("[") + 1 : requirement.index("]")]
            for nested in inner.split(","):
                if nested.strip() not in seen:
                    yield from _requirements(nested.strip(), table, seen)
        else:
            yield name


def test_each_extra_brings_the_modules_the_code_asks_it_for() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    table: dict[str, list[str]] = project["optional-dependencies"]
    providers = importlib.metadata.packages_distributions()
    assert set(EXTRAS) <= set(table)
    for extra, modules in EXTRAS.items():
        brought = set(_requirements(extra, table, set()))
        for module in modules:
            distributions = {d.lower() for d in providers[module.split(".")[0]]}
            if module.startswith("opentelemetry."):  # a namespace package: name it exactly
                distributions = {"opentelemetry-exporter-otlp-proto-http"}
            assert distributions & brought, f"[{extra}] lacks what provides {module}"
    core = {re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0].lower() for r in project["dependencies"]}
    assert not core & {"rich", "looptime", "cryptography", "protobuf", "aioresponses"}
    assert not any(name.startswith("opentelemetry-exporter") for name in core)


def test_the_dev_extra_installs_everything_so_make_targets_keep_working() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    table: dict[str, list[str]] = project["optional-dependencies"]
    dev = set(_requirements("dev", table, set()))
    everything = set().union(*(_requirements(e, table, set()) for e in EXTRAS))
    assert everything <= dev


def test_the_package_declares_its_license_as_an_spdx_expression() -> None:
    metadata = importlib.metadata.metadata("swarmpod")
    assert metadata["License-Expression"] == "MIT"
    assert Path(ROOT / "LICENSE").read_text().startswith("MIT License")


def test_the_command_without_the_cli_extra_names_the_pip_command_in_one_line() -> None:
    swarmpod = core_python().parent / "swarmpod"
    assert swarmpod.exists()  # the console script is installed with the library
    ran = subprocess.run(
        [str(swarmpod), "generate", "a fox"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 2
    (line,) = ran.stderr.strip().splitlines()
    assert line.startswith("swarmpod: the command line needs the optional dependencies rich, ")
    assert line.endswith("pip install 'swarmpod[cli]'")

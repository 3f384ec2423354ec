"""The ``swarmpod`` command line: generate, demo, replay, emulator.

``generate --record FILE`` and ``demo --record FILE`` write every HTTP exchange into a cassette;
``replay FILE...`` runs scenario files (``.toml``) and cassettes (``.jsonl``) in virtual time,
and ``replay cassette FILE...`` reads every file as a cassette whatever its name.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import shlex
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from observability import Telemetry, configure_logging

from ._orchestrator import Orchestrator
from ._progress import ProgressEvent, Stage
from ._result import GenerationResult
from .accounts._cli import add_account_commands, run_account_command
from .emulator import Emulator, EmulatorConfig, EndpointConfig
from .emulator.swarm import SwarmConfig
from .errors import OrchestratorError, SettingsError
from .replay import (
    Cassette,
    CassetteRecorder,
    Scenario,
    load_cassette,
    load_scenario,
    replay_cassette_blocking,
    run_scenario_blocking,
)
from .secrets import Secret
from .service import ServiceConfig, SwarmpodService
from .settings import Settings

__all__ = ["main"]

EMBEDDED_ENDPOINT = "local-ep"
EMBEDDED_KEY = "emulator-key"

console = Console(stderr=True)


# --- argument parsing ---------------------------------------------------------------------


def _param(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="swarmpod",
        description="SwarmUI generations on RunPod serverless workers, woken only when needed.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    commands = parser.add_subparsers(dest="command", required=True)
    traced = argparse.ArgumentParser(add_help=False)
    tracing = traced.add_argument_group("tracing")
    tracing.add_argument(
        "--trace-file",
        type=Path,
        metavar="FILE",
        help="append every span as a JSON line to FILE (swarmpod report FILE reads it)",
    )
    tracing.add_argument(
        "--otlp",
        action="store_true",
        help="export spans and metrics over OTLP/HTTP (also on when OTEL_EXPORTER_OTLP_ENDPOINT "
        "is set; default endpoint http://localhost:4318, Jaeger's)",
    )
    tracing.add_argument("--console-spans", action="store_true", help="print spans to stdout")

    gen = commands.add_parser("generate", help="generate images from a prompt", parents=[traced])
    gen.add_argument("prompt")
    gen.add_argument(
        "--model", help="SwarmUI model name (e.g. OfficialStableDiffusion/sd_xl_base_1.0)"
    )
    gen.add_argument("--images", type=int, default=1, help="number of images (default 1)")
    gen.add_argument("--width", type=int)
    gen.add_argument("--height", type=int)
    gen.add_argument("--steps", type=int)
    gen.add_argument("--seed", type=int, help="seed of the first image (-1 = random)")
    gen.add_argument("--cfgscale", type=float)
    gen.add_argument("--negative", dest="negativeprompt", help="negative prompt")
    gen.add_argument(
        "--param",
        action="append",
        type=_param,
        default=[],
        metavar="KEY=VALUE",
        help="any other SwarmUI parameter by id (value parsed as JSON when it can be)",
    )
    gen.add_argument("--out", type=Path, default=Path("output"), help="directory for the PNGs")
    gen.add_argument("--config", type=Path, help="TOML settings file")
    gen.add_argument(
        "--endpoint-id", help="RunPod endpoint id (else EndpointId / RUNPOD_ENDPOINT_ID)"
    )
    gen.add_argument("--base-url", help="RunPod API base URL (RunPodBaseUrl)")
    gen.add_argument(
        "--emulator",
        action="store_true",
        help="use the embedded emulator even if an endpoint is configured",
    )
    gen.add_argument("--record", type=Path, metavar="FILE", help=_RECORD_HELP)

    demo = commands.add_parser(
        "demo",
        help="a short demo on the embedded emulator",
        parents=[traced],
        description="Writes the images, OUT/trace.jsonl (unless --trace-file) and OUT/report.html.",
    )
    demo.add_argument("--out", type=Path, default=Path("output"))
    demo.add_argument("--cold-start", type=float, default=3.0, help="emulated cold start (s)")
    demo.add_argument("--record", type=Path, metavar="FILE", help=_RECORD_HELP)

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

    report = commands.add_parser(
        "report",
        help="a self-contained HTML lifecycle report from a trace file",
        description="Timeline of workers and generations by phase, cold-start histogram, "
        "cost split per user and model, the slowest generations.",
    )
    report.add_argument("trace_file", type=Path, metavar="TRACE_FILE", help="a --trace-file")
    report.add_argument(
        "-o", "--output", type=Path, default=Path("report.html"), help="default report.html"
    )

    serve = commands.add_parser(
        "serve",
        help="serve the seed's routes and a SwarmUI-compatible API (Swarm-API-Backend)",
        description="Serve RunPod backends to SwarmUI: the seed extension's GetStatus and "
        "RefreshModels, per-user keys, and the routes a SwarmUI Swarm-API-Backend calls. "
        "Backends come from [backends.<name>] tables of the --config file.",
        parents=[traced],
    )
    serve.add_argument("--config", type=Path, help="TOML file: [service] and [backends.<name>]")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 7801)")

    add_account_commands(commands)

    emu = commands.add_parser("emulator", help="serve the RunPod + SwarmUI emulator on a port")
    emu.add_argument("--host", default="127.0.0.1")
    emu.add_argument("--port", type=int, default=8000)
    emu.add_argument("--endpoint-id", default=EMBEDDED_ENDPOINT)
    emu.add_argument("--api-key", default=None, help=f"accepted key (default {EMBEDDED_KEY})")
    emu.add_argument(
        "--cold-start",
        type=float,
        help="cold start seconds (default 20; 0 with --handler: starting it is the cold start)",
    )
    emu.add_argument("--idle-timeout", type=float, default=5.0, help="worker idle timeout (s)")
    emu.add_argument("--max-workers", type=int, default=3)
    emu.add_argument("--seconds-per-step", type=float, default=0.05)
    emu.add_argument(
        "--protocol", choices=("v1", "v2"), default="v1", help="built-in worker image (v1)"
    )
    emu.add_argument("--min-workers", type=int, default=0)
    emu.add_argument("--execution-timeout", type=float, default=600.0, help="seconds")
    hosted = emu.add_argument_group(
        "hosting your own handler",
        "run your RunPod handler (ending in runpod.serverless.start) as the workers",
    )
    how = hosted.add_mutually_exclusive_group()
    how.add_argument("--handler", type=Path, help="the handler script each worker runs")
    how.add_argument("--handler-command", help='the whole worker command, e.g. "python -m app"')
    hosted.add_argument(
        "--handler-python",
        default=sys.executable,
        help="interpreter for --handler, one with `runpod` installed (default: this one)",
    )
    hosted.add_argument(
        "--handler-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra worker environment (repeatable)",
    )
    hosted.add_argument("--handler-cwd", type=Path, help="worker working directory")
    hosted.add_argument("--ping-interval", type=float, default=10.0, help="ping interval (s)")
    hosted.add_argument("--stop-grace", type=float, default=10.0, help="SIGTERM to SIGKILL (s)")
    return parser


_RECORD_HELP = (
    "record every HTTP exchange into a cassette FILE (play it back: swarmpod replay cassette FILE)"
)


# --- the embedded emulator ---------------------------------------------------------------


def embedded_emulator_config(*, cold_start_s: float) -> EmulatorConfig:
    """The emulator `generate` and `demo` start when no endpoint is configured."""
    endpoint = EndpointConfig(
        protocol="v2",
        cold_start_s=cold_start_s,
        queue_delay_s=0.5,
        idle_timeout_s=5.0,
        max_workers=3,
        swarm=SwarmConfig(seconds_per_step=0.02),
    )
    return EmulatorConfig(endpoints={EMBEDDED_ENDPOINT: endpoint}, api_keys=(EMBEDDED_KEY,))


@contextlib.asynccontextmanager
async def embedded_settings(base: Settings, *, cold_start_s: float) -> AsyncIterator[Settings]:
    """Start the embedded emulator and yield settings pointing at it."""
    config = embedded_emulator_config(cold_start_s=cold_start_s)
    endpoint = config.endpoints[EMBEDDED_ENDPOINT]
    async with Emulator(config) as emulator:
        yield base.replace(
            endpoint_id=EMBEDDED_ENDPOINT,
            runpod_api_key=Secret(EMBEDDED_KEY),
            runpod_base_url=emulator.base_url,
            poll_interval_ms=min(base.poll_interval_ms, 500),
            state_file=":memory:",  # the embedded emulator lives as long as this process
            worker_protocol="v2",  # the embedded image is known: leases
            endpoint_queue_delay_sec=endpoint.queue_delay_s,  # its billing, for cost attribution
            endpoint_idle_timeout_sec=endpoint.idle_timeout_s,
        )


# --- progress display ----------------------------------------------------------------------


class _ProgressView:
    """Renders progress events of one or more generations as rich progress bars."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress

    def track(self, label: str) -> Any:
        task: TaskID = self._progress.add_task(label, total=1.0, status="queued")

        def on_progress(event: ProgressEvent) -> None:
            status = event.message
            completed: float | None = None
            if event.stage is Stage.GENERATING and event.percent is not None:
                completed = event.percent
            elif event.stage is Stage.DONE:
                completed = 1.0
            self._progress.update(task, status=status, completed=completed)

        return on_progress


def _progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


# --- writing results -----------------------------------------------------------------------


def write_images(result: GenerationResult, out: Path, *, stem: str) -> list[Path]:
    """Write every image of ``result`` as PNG under ``out``, never overwriting a file."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for index, image in enumerate(result.images):
        seed = "x" if image.seed is None else str(image.seed)
        path = out / f"{stem}-{index:02d}-seed{seed}.png"
        bump = 1
        while path.exists():
            path = out / f"{stem}-{index:02d}-seed{seed}-{bump}.png"
            bump += 1
        path.write_bytes(image.data)
        written.append(path)
    return written


def _summary(result: GenerationResult, written: Sequence[Path]) -> str:
    t = result.timings
    start = f"cold start {t.startup:.1f} s" if result.cold_start else "warm worker"
    return (
        f"{start} · generation {t.generating:.1f} s · total {t.total:.1f} s · "
        f"{len(written)} image(s) written to {written[0].parent if written else '-'}"
    )


def _stem() -> str:
    return dt.datetime.now().strftime("swarmpod-%Y%m%d-%H%M%S")


def _orchestrator(settings: Settings, record: Path | None) -> Orchestrator | CassetteRecorder:
    """An orchestrator, or with ``--record`` one that records into a cassette."""
    if record is None:
        return Orchestrator(settings)
    return CassetteRecorder(record, settings, on_written=_recorded)


def _recorded(path: Path, exchanges: int) -> None:
    """Say where a cassette went (also after a failed run: that is when it is most useful)."""
    console.print(
        f"recorded {exchanges} HTTP exchange(s) into {escape(str(path))}; "
        f"replay it: swarmpod replay cassette {escape(str(path))}"
    )


# --- commands ------------------------------------------------------------------------------


def _generate_settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {"EndpointId": args.endpoint_id, "RunPodBaseUrl": args.base_url}
    return Settings.load(args.config, overrides=overrides)


async def _generate(args: argparse.Namespace) -> int:
    settings = _generate_settings(args)
    params: dict[str, Any] = {"prompt": args.prompt}
    for key in ("model", "width", "height", "steps", "seed", "cfgscale", "negativeprompt"):
        value = getattr(args, key)
        if value is not None:
            params[key] = value
    params.update(dict(args.param))

    use_emulator = args.emulator or (settings.endpoint_id is None and not settings.runpod_api_key)
    async with contextlib.AsyncExitStack() as stack:
        if use_emulator:
            console.print(
                "[yellow]No RunPod endpoint and key configured: using the embedded emulator "
                "(no GPU, no RunPod account; images are synthetic).[/]"
            )
            settings = await stack.enter_async_context(
                embedded_settings(settings, cold_start_s=4.0)
            )
        orch = _orchestrator(settings, args.record)
        await stack.enter_async_context(orch)
        with _progress_bar() as progress:
            on_progress = _ProgressView(progress).track(args.prompt[:30])
            result = await orch.generate(params, images=args.images, on_progress=on_progress)
    written = write_images(result, args.out, stem=_stem())
    console.print(_summary(result, written))
    for path in written:
        print(path)
    return 0


DEMO_PROMPTS = (
    "a lighthouse on a cliff at dawn, oil painting",
    "a red fox in fresh snow, photograph",
    "a paper boat on a rainy street, watercolor",
)
_SHORT_STATE = {"ShuttingDown": "Release"}


def _short_path(path: Sequence[str]) -> str:
    return ">".join(_SHORT_STATE.get(state, state) for state in path)


async def _demo(args: argparse.Namespace) -> int:
    """Two generations at once lease two workers; a third reuses the first one warm."""
    console.print(
        "[bold]swarmpod demo[/] on the embedded emulator (no GPU; cold start "
        f"{args.cold_start:g} s, real time): two generations at once lease two workers, "
        "a third arrives once the first is done and reuses its worker warm; every worker "
        "is released when the demo ends."
    )
    base = Settings.load(env={}, overrides={"StartupTimeoutSec": 60})
    results: dict[int, GenerationResult] = {}
    async with contextlib.AsyncExitStack() as stack:
        settings = await stack.enter_async_context(
            embedded_settings(base, cold_start_s=args.cold_start)
        )
        orch = _orchestrator(settings, args.record)
        await stack.enter_async_context(orch)
        first_done = anyio.Event()
        with _progress_bar() as progress:
            view = _ProgressView(progress)

            async def one(index: int) -> None:
                prompt = DEMO_PROMPTS[index]
                track = view.track(prompt[:28])

                params = {"prompt": prompt, "width": 512, "height": 512, "steps": 40}
                results[index] = await orch.generate(params, images=2, on_progress=track)
                if index == 0:
                    first_done.set()

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(one, 0)
                tasks.start_soon(one, 1)
                await first_done.wait()
                tasks.start_soon(one, 2)

    table = Table(title="swarmpod demo")
    for column in ("prompt", "worker", "start", "generation", "chart path"):
        table.add_column(column)
    stem = _stem()
    files = 0
    for index in sorted(results):
        result = results[index]
        written = write_images(result, args.out, stem=f"{stem}-{index}")
        start = f"cold {result.timings.startup:.1f} s" if result.cold_start else "warm"
        table.add_row(
            DEMO_PROMPTS[index][:20],
            (result.worker_id or "-")[:8],
            start,
            f"{result.timings.generating:.1f} s",
            _short_path(result.path),
        )
        files += len(written)
    console.print(table)
    console.print(f"{files} PNG files written to {args.out}/")
    return 0


def _emulator_config(args: argparse.Namespace) -> EmulatorConfig:
    """The emulator `swarmpod emulator` serves; bad flags raise SettingsError before it starts."""
    key = args.api_key or os.environ.get("SWARMPOD_EMULATOR_KEY") or EMBEDDED_KEY
    try:
        endpoint = EndpointConfig(
            cold_start_s=_emulator_cold_start(args),
            idle_timeout_s=args.idle_timeout,
            max_workers=args.max_workers,
            min_workers=args.min_workers,
            execution_timeout_s=args.execution_timeout,
            protocol=args.protocol,
            swarm=SwarmConfig(seconds_per_step=args.seconds_per_step),
            **_hosted_handler(args),
        )
    except ValueError as exc:
        if isinstance(exc, SettingsError):
            raise
        raise SettingsError("emulator", str(exc), source="command line") from None
    return EmulatorConfig(
        endpoints={args.endpoint_id: endpoint}, api_keys=(key,), host=args.host, port=args.port
    )


async def _emulator(args: argparse.Namespace) -> int:
    config: EmulatorConfig = args.emulator_config
    if any(ep.handler_command is not None for ep in config.endpoints.values()):
        logging.getLogger("swarmpod.emulator").setLevel(logging.INFO)  # the workers' output
    async with Emulator(config) as emulator:
        console.print(f"RunPod emulator serving at [bold]{emulator.base_url}[/]")
        console.print(
            "Point swarmpod at it:\n"
            f"  export SWARMPOD_RUNPOD_BASE_URL={emulator.base_url}\n"
            f"  export RUNPOD_ENDPOINT_ID={args.endpoint_id}\n"
            "  export RUNPOD_API_KEY=<the emulator key>\n"
            "Press Ctrl-C to stop."
        )
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                break  # leaving the block stops every worker (and hosted worker process)
    return 0


def _emulator_cold_start(args: argparse.Namespace) -> float:
    if args.cold_start is not None:
        return float(args.cold_start)
    hosted = args.handler is not None or args.handler_command is not None
    return 0.0 if hosted else 20.0


def _hosted_handler(args: argparse.Namespace) -> dict[str, Any]:
    """EndpointConfig fields for ``--handler`` / ``--handler-command`` (empty without them)."""
    if args.handler is not None:
        if not args.handler.is_file():
            raise SettingsError("--handler", f"{args.handler} is not a file")
        command: tuple[str, ...] = (args.handler_python, str(args.handler.resolve()))
    elif args.handler_command is not None:
        command = tuple(shlex.split(args.handler_command))
    else:
        return {}
    env = {}
    for item in args.handler_env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SettingsError("--handler-env", f"expected KEY=VALUE, got {item!r}")
        env[name] = value
    return {
        "handler_command": command,
        "handler_env": env,
        "handler_cwd": None if args.handler_cwd is None else str(args.handler_cwd),
        "ping_interval_s": args.ping_interval,
        "handler_stop_grace_s": args.stop_grace,
    }


def _replay(args: argparse.Namespace) -> int:
    """Run each scenario or cassette on its own virtual-time loop.

    Exit 1 if any verdict fails, 2 (before running anything) if a file is unusable.
    """
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


async def _serve(args: argparse.Namespace) -> int:
    """Run the service until SIGINT or SIGTERM; every worker is released on the way out."""
    config: ServiceConfig = args.service_config
    async with SwarmpodService(config) as service:
        names = ", ".join(f"{b.id}: {b.name} ({b.endpoint_id})" for b in service.backends)
        console.print(f"swarmpod serves {service.url}  backends: {escape(names or 'none')}")
        console.print(
            f"add it to SwarmUI as a Swarm-API-Backend: Address {service.url}, "
            "AuthorizationHeader 'Bearer <token>' (swarmpod users token NAME)"
        )
        await anyio.sleep_forever()
    return 0


async def _released_on_sigterm(
    command: Callable[[argparse.Namespace], Awaitable[int]], args: argparse.Namespace
) -> int:
    """Run ``command``; SIGTERM cancels it, so every worker it holds is released first."""
    status = 143
    failure: OrchestratorError | None = None
    async with anyio.create_task_group() as tasks:

        async def run() -> None:
            nonlocal status, failure
            try:
                status = await command(args)
            except OrchestratorError as exc:  # raised below, not wrapped in an ExceptionGroup
                failure = exc
            tasks.cancel_scope.cancel()

        async def on_sigterm() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM) as signals:
                async for _ in signals:
                    console.print("[yellow]SIGTERM: releasing every worker, then exiting[/]")
                    tasks.cancel_scope.cancel()
                    return

        tasks.start_soon(run)
        tasks.start_soon(on_sigterm)
    if failure is not None:
        raise failure
    return status


def _telemetry(args: argparse.Namespace) -> Telemetry | None:
    """The process's telemetry from the tracing flags (None for commands without them)."""
    if not hasattr(args, "otlp"):
        return None
    if args.command == "demo" and args.trace_file is None:
        args.trace_file = args.out / "trace.jsonl"
        args.trace_file.parent.mkdir(parents=True, exist_ok=True)
        args.trace_file.unlink(missing_ok=True)  # the demo's report shows this run only
    try:
        return Telemetry.configure(
            otlp=True if args.otlp else None,
            console=args.console_spans,
            trace_file=args.trace_file,
            make_global=True,
        )
    except OSError as exc:
        raise SettingsError(
            "--trace-file", f"cannot write {args.trace_file}: {exc.strerror}", source="command line"
        ) from None


def _report(args: argparse.Namespace) -> int:
    from observability import write_report

    if not args.trace_file.is_file():
        raise SettingsError("TRACE_FILE", f"no such file: {args.trace_file}", source="command line")
    summary = write_report(args.trace_file, args.output)
    console.print(
        f"{summary.generations} generation(s), {summary.workers} worker(s), "
        f"{summary.gpu_seconds_attributed:.0f} GPU-s (${summary.cost_usd:.4f}) → "
        f"{escape(str(args.output))}"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``swarmpod`` console script."""
    args = _parser().parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    configure_logging(level)
    telemetry: Telemetry | None = None
    try:
        telemetry = _telemetry(args)
        return _dispatch(args)
    except OrchestratorError as exc:
        phase = f", phase {exc.phase}" if exc.phase else ""
        console.print(
            f"[red]error[/] ({type(exc).__name__}{phase}): {escape(str(exc))}", soft_wrap=True
        )
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        if telemetry is not None:
            telemetry.shutdown()  # flush: the last spans are written, not lost
            _after_demo(args)


def _after_demo(args: argparse.Namespace) -> None:
    """The demo leaves its lifecycle report beside its trace file."""
    if args.command != "demo" or args.trace_file is None or not args.trace_file.is_file():
        return
    from observability import write_report

    output = args.out / "report.html"
    summary = write_report(args.trace_file, output)
    console.print(
        f"trace: {escape(str(args.trace_file))} · lifecycle report: {escape(str(output))} "
        f"({summary.gpu_seconds_attributed:.0f} GPU-s, ${summary.cost_usd:.4f})"
    )


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "replay":
        return _replay(args)  # each scenario runs on its own virtual-time loop
    if args.command == "users":
        return run_account_command(args)
    if args.command == "report":
        return _report(args)
    if args.command == "serve":
        args.service_config = ServiceConfig.load(args.config, host=args.host, port=args.port)
        return anyio.run(_released_on_sigterm, _serve, args)
    command = {"generate": _generate, "demo": _demo, "emulator": _emulator}[args.command]
    if args.command == "generate":
        _generate_settings(args)  # refuse bad settings before anything starts
    if args.command == "emulator":
        args.emulator_config = _emulator_config(args)
        return anyio.run(command, args)
    return anyio.run(_released_on_sigterm, command, args)


if __name__ == "__main__":
    sys.exit(main())

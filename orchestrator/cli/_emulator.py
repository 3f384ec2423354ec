"""``swarmpod emulator``: the RunPod + SwarmUI emulator on a port, until SIGINT/SIGTERM.

With ``--handler`` / ``--handler-command`` its workers run the user's own RunPod handler.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

import anyio
from rich.markup import escape

from ..emulator import Emulator, EmulatorConfig, EndpointConfig
from ..emulator.swarm import SwarmConfig
from ..errors import SettingsError
from ._command import Command, Subparsers
from ._console import console
from ._embedded import EMBEDDED_ENDPOINT, EMBEDDED_KEY

__all__ = ["EMULATOR", "emulator_config"]


def _declare(commands: Subparsers, traced: argparse.ArgumentParser) -> None:
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
    emu.add_argument(
        "--proxy-urls",
        action="store_true",
        help="built-in workers report RunPod proxy URLs (https://{worker}-7801.proxy.runpod.net) "
        "as on RunPod; `swarmpod generate --emulator-proxy` routes them here (a hosted "
        "handler that builds such URLs itself needs only the latter)",
    )
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


def emulator_config(args: argparse.Namespace) -> EmulatorConfig:
    """The emulator `swarmpod emulator` serves; bad flags raise SettingsError before it starts."""
    key = args.api_key or os.environ.get("SWARMPOD_EMULATOR_KEY") or EMBEDDED_KEY
    try:
        endpoint = EndpointConfig(
            cold_start_s=_cold_start(args),
            idle_timeout_s=args.idle_timeout,
            max_workers=args.max_workers,
            min_workers=args.min_workers,
            execution_timeout_s=args.execution_timeout,
            protocol=args.protocol,
            proxy_urls=args.proxy_urls,
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


def _cold_start(args: argparse.Namespace) -> float:
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


async def _serve(args: argparse.Namespace) -> int:
    config: EmulatorConfig = args.emulator_config
    if any(ep.handler_command is not None for ep in config.endpoints.values()):
        logging.getLogger("swarmpod.emulator").setLevel(logging.INFO)  # the workers' output
    async with Emulator(config) as emulator:
        console.print(f"RunPod emulator serving at [bold]{emulator.base_url}[/]")
        console.print(
            "Point swarmpod at it:\n"
            f"  export SWARMPOD_RUNPOD_BASE_URL={emulator.base_url}\n"
            f"  export RUNPOD_ENDPOINT_ID={args.endpoint_id}\n"
            f"  export RUNPOD_API_KEY={escape(config.api_keys[0])}\n"
            "  swarmpod generate 'a red fox' --emulator-proxy   # routes proxy URLs here\n"
            "Press Ctrl-C to stop.",
            soft_wrap=True,
        )
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                break  # leaving the block stops every worker (and hosted worker process)
    return 0


def _run(args: argparse.Namespace) -> int:
    args.emulator_config = emulator_config(args)
    return anyio.run(_serve, args)


EMULATOR = Command("emulator", _declare, _run)
"""``swarmpod emulator``."""

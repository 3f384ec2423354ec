"""``swarmpod generate PROMPT``: generate images, on RunPod or on the embedded emulator."""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path
from typing import Any

import aiohttp
import anyio

from ..emulator import EmulatorProxyRouting
from ..errors import SettingsError
from ..settings import Settings
from ._command import Command, Subparsers
from ._console import ProgressView, console, progress_bar
from ._embedded import embedded_settings
from ._images import check_out, file_stem, summary, write_images_or_keep
from ._recording import RECORD_HELP, orchestrator_for
from ._sigterm import released_on_sigterm

__all__ = ["GENERATE", "generate"]

_NAMED_PARAMS = ("model", "width", "height", "steps", "seed", "cfgscale", "negativeprompt")


def _param(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


def _declare(commands: Subparsers, traced: argparse.ArgumentParser) -> None:
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
    gen.add_argument("--record", type=Path, metavar="FILE", help=RECORD_HELP)
    gen.add_argument(
        "--emulator-proxy",
        action="store_true",
        help="route RunPod proxy URLs (https://{worker}-7801.proxy.runpod.net) to the workers "
        "of the emulator at --base-url (`swarmpod emulator`), e.g. for a handler that reports "
        "its RunPod proxy URL, as the HartsyAI worker does",
    )


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {"EndpointId": args.endpoint_id, "RunPodBaseUrl": args.base_url}
    return Settings.load(args.config, overrides=overrides)


async def generate(args: argparse.Namespace) -> int:
    """Generate the images, write them under ``--out``, print their paths on stdout."""
    settings = _settings(args)
    params: dict[str, Any] = {"prompt": args.prompt}
    for key in _NAMED_PARAMS:
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
        routing = _emulator_proxy(args, settings)
        session = None
        if routing and args.record is None:
            session = await stack.enter_async_context(
                aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=None), middlewares=routing
                )
            )
        orch = orchestrator_for(settings, args.record, middlewares=routing, session=session)
        await stack.enter_async_context(orch)
        with progress_bar() as progress:
            on_progress = ProgressView(progress).track(args.prompt[:30])
            result = await orch.generate(params, images=args.images, on_progress=on_progress)
    written = write_images_or_keep(result, args.out, stem=file_stem())
    if written is None:
        return 2
    console.print(summary(result, written))
    for path in written:
        print(path)
    return 0


def _emulator_proxy(
    args: argparse.Namespace, settings: Settings
) -> tuple[aiohttp.ClientMiddlewareType, ...]:
    """With ``--emulator-proxy``, the routing of proxy URLs to the emulator's workers."""
    if not args.emulator_proxy or args.emulator:
        return ()  # the embedded emulator's workers report their local URLs
    if settings.endpoint_id is None or not settings.runpod_api_key:
        raise SettingsError(
            "--emulator-proxy",
            "needs the emulator's endpoint id and key (EndpointId, RUNPOD_API_KEY)",
            source="command line",
        )
    key = settings.runpod_api_key
    return (EmulatorProxyRouting(settings.runpod_base_url, settings.endpoint_id, key),)


def _run(args: argparse.Namespace) -> int:
    _settings(args)  # refuse bad settings before anything starts
    check_out(args.out)  # and an output that cannot be written, before paying for a GPU
    return anyio.run(released_on_sigterm, generate, args)


GENERATE = Command("generate", _declare, _run)
"""``swarmpod generate``."""

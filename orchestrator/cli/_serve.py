"""``swarmpod serve``: the seed's routes and the SwarmUI-compatible API, until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
from pathlib import Path

import anyio
from rich.markup import escape

from ..service import ServiceConfig, SwarmpodService
from ._command import Command, Subparsers
from ._console import console
from ._sigterm import released_on_sigterm

__all__ = ["SERVE"]


def _declare(commands: Subparsers, traced: argparse.ArgumentParser) -> None:
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


async def _serve(args: argparse.Namespace) -> int:
    """Run the service until cancelled; every worker is released on the way out."""
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


def _run(args: argparse.Namespace) -> int:
    args.service_config = ServiceConfig.load(args.config, host=args.host, port=args.port)
    return anyio.run(released_on_sigterm, _serve, args)


SERVE = Command("serve", _declare, _run)
"""``swarmpod serve``."""

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

__all__ = ["SERVE", "start_notices"]


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
        console.print(f"state store: {escape(service.store_description)}", soft_wrap=True)
        console.print(
            f"add it to SwarmUI as a Swarm-API-Backend: Address {service.url}, "
            "AuthorizationHeader 'Bearer <token>' (swarmpod users token NAME)"
        )
        for notice in await start_notices(service, args.config):
            console.print(f"[yellow]{escape(notice)}[/]", soft_wrap=True)
        if service.evicted is None:
            await anyio.sleep_forever()
        else:
            await service.evicted.wait()
            console.print(
                "[red]error[/]: another replica declared this one dead (its heartbeat came too "
                "late) and took its workers over; exiting: restart it",
                soft_wrap=True,
            )
            return 1
    return 0


async def start_notices(service: SwarmpodService, config: Path | None) -> list[str]:
    """What an operator must know at start: no user can call it yet, or a backend's
    AutoRefresh cannot run (it discovers models with the backend's own key)."""
    notices = []
    users = f"swarmpod users --config {config}" if config is not None else "swarmpod users"
    if not await service.accounts.list_users():
        notices.append(
            "no users yet: every API call is refused (401) until you add one and issue a "
            f"token: {users} add NAME --role poweruser; {users} token NAME"
        )
    for backend in service.backends:
        if backend.settings.auto_refresh and not backend.settings.runpod_api_key:
            notices.append(
                f"backend {backend.name}: AutoRefresh skipped, it needs the backend's "
                "RunPodApiKey (discovery runs with the backend's key, never a user's); models "
                "are discovered on RefreshModels instead"
            )
    return notices


def _run(args: argparse.Namespace) -> int:
    args.service_config = ServiceConfig.load(args.config, host=args.host, port=args.port)
    return anyio.run(released_on_sigterm, _serve, args)


SERVE = Command("serve", _declare, _run)
"""``swarmpod serve``."""

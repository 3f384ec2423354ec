"""Model discovery: ask one held worker's SwarmUI for every model, as SwarmSwarmBackend does.

:func:`refresh_models` is the only thing in :mod:`orchestrator.models` that wakes a worker: it
holds one through the orchestrator, discovers, gives the worker back and saves the catalog.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import anyio

from ..errors import SwarmUIError
from ._catalog import ModelCatalog, iso_utc, utc_now
from ._listing import SUBTYPES
from ._registry import ModelRegistry

if TYPE_CHECKING:
    from .._orchestrator import Orchestrator
    from ..swarmui import SwarmUIClient

__all__ = ["discover_models", "refresh_models"]

log = logging.getLogger("swarmpod.models")

_DISCOVERY_DEPTH: Final = 999  # what SwarmSwarmBackend sends; SwarmUI clamps it to 20


async def discover_models(
    swarm: SwarmUIClient,
    endpoint_id: str,
    *,
    clock: Callable[[], dt.datetime] | None = None,
) -> ModelCatalog:
    """Ask one worker's SwarmUI for every model it has, as SwarmSwarmBackend does (§6).

    One ``ListModels`` per subtype of :data:`SUBTYPES`, all in parallel, each with
    ``path: ""``, ``depth: 999`` (SwarmUI clamps it to 20), ``allowRemote: false``,
    ``sortBy: "Name"``, ``sortReverse: false`` and ``dataImages: true`` (previews as data URLs,
    so they outlive the worker). It never wakes a worker: ``swarm`` must be one already held
    (see :func:`refresh_models`).

    Args:
        swarm: the SwarmUI of a held, ready worker.
        endpoint_id: the endpoint the catalog is for.
        clock: the wall clock (UTC) for ``refreshed_at`` (default: the real time).

    Raises:
        TransportError: the worker could not be reached (the other requests are cancelled).
            A subtype whose ``ListModels`` fails with a SwarmUI error is logged and listed in
            ``failed_subtypes`` instead.
    """
    found: dict[str, tuple[dict[str, Any], ...]] = {}
    failed: set[str] = set()
    fatal: list[Exception] = []

    async def one(subtype: str, scope: anyio.CancelScope) -> None:
        try:
            found[subtype] = await _list_subtype(swarm, subtype)
        except SwarmUIError as exc:
            log.error("failed to get %s models from %r: %s", subtype, swarm, exc)
            failed.add(subtype)
        except Exception as exc:  # TransportError and the unexpected: end the discovery
            fatal.append(exc)
            scope.cancel()

    async with anyio.create_task_group() as tasks:
        for subtype in SUBTYPES:
            tasks.start_soon(one, subtype, tasks.cancel_scope)
    if fatal:
        raise fatal[0]
    return ModelCatalog(
        endpoint_id=endpoint_id,
        models={subtype: found.get(subtype, ()) for subtype in SUBTYPES},
        refreshed_at=iso_utc((clock or utc_now)()),
        failed_subtypes=tuple(subtype for subtype in SUBTYPES if subtype in failed),
    )


async def _list_subtype(swarm: SwarmUIClient, subtype: str) -> tuple[dict[str, Any], ...]:
    listing = await swarm.list_models(
        path="",
        depth=_DISCOVERY_DEPTH,
        subtype=subtype,
        allow_remote=False,
        sort_by="Name",
        sort_reverse=False,
        data_images=True,
    )
    log.debug("got %d %s models from %r", len(listing.files), subtype, swarm)
    return listing.files


async def refresh_models(
    orch: Orchestrator,
    registry: ModelRegistry,
    *,
    user: str | None = None,
    clock: Callable[[], dt.datetime] | None = None,
) -> ModelCatalog:
    """Hold a worker (waking one if none is warm), discover its models, persist them.

    The worker is given back as soon as discovery ends (it stays warm for the idle window),
    before the catalog is saved. The endpoint is the orchestrator's.

    Args:
        orch: the orchestrator of the endpoint (entered).
        registry: where the catalog is stored.
        user: whose RunPod key wakes the worker when the backend has none.
        clock: the wall clock (UTC) for ``refreshed_at`` (default: the real time).

    Returns:
        The catalog now stored (see :meth:`ModelRegistry.save`: after an empty discovery this
        is the earlier catalog).

    Raises:
        WorkerNotReadyError: no worker was ready within StartupTimeoutSec.
        MissingApiKeyError: neither the backend nor ``user`` has a RunPod key.
        TransportError: the worker could not be reached.
    """
    endpoint_id = orch.status().endpoint_id
    async with orch.hold_worker(user=user) as swarm:
        catalog = await discover_models(swarm, endpoint_id, clock=clock)
    stored = await registry.save(catalog)
    log.info(
        "endpoint %s: %d models discovered, %d in the catalog",
        endpoint_id,
        catalog.count(),
        stored.count(),
    )
    return stored

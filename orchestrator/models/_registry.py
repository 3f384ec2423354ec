"""Model catalogs persisted per endpoint in the state store (their SQLite file, or the
PostgreSQL database replicas share), so a restart needs no worker to list them."""

from __future__ import annotations

import json
import logging
import os
from typing import Final

from ..store import CATALOGS, Statements, StateStore, open_component
from ._catalog import ModelCatalog

__all__ = ["ModelRegistry"]

log = logging.getLogger("swarmpod.models")

CATALOGS_HOLD: Final = "its model catalogs (RefreshModels finds them)"


class ModelRegistry:
    """Catalogs persisted per endpoint, so a restart shows models without waking a worker.

    One row per endpoint holds its catalog as JSON (table ``model_catalogs``; the database
    may be shared with other swarmpod tables). Each call is one short transaction. Open it
    with :meth:`open`.

    >>> import anyio
    >>> async def demo() -> None:
    ...     registry = await ModelRegistry.open(":memory:")
    ...     print(await registry.load("ep"))
    ...     stored = await registry.save(
    ...         ModelCatalog("ep", {"VAE": ({"name": "v.safetensors"},)}, None)
    ...     )
    ...     print(await registry.load("ep") == stored, stored.names("VAE"))
    ...     await registry.close()
    >>> anyio.run(demo)
    None
    True ('v.safetensors',)

    Attributes:
        store: where the catalogs are kept.
    """

    def __init__(self, store: StateStore, *, owns_store: bool = False) -> None:
        """Use :meth:`open` (it migrates the catalogs' table)."""
        self.store = store
        self._owns_store = owns_store

    @classmethod
    async def open(cls, where: StateStore | str | os.PathLike[str]) -> ModelRegistry:
        """The catalogs in ``where``: a store, or a SQLite file (created 0600, folders made
        as needed; closed with the registry), or ``":memory:"``.

        Raises:
            StateFileError: the SQLite file is unusable (left untouched).
            SchemaTooNewError: a newer swarmpod migrated the database.
        """
        store, owns = await open_component(where, CATALOGS, holds=CATALOGS_HOLD)
        return cls(store, owns_store=owns)

    def __repr__(self) -> str:
        return f"ModelRegistry({self.store.description!r})"

    async def close(self) -> None:
        """Close the store it opened (a store it was given stays open)."""
        if self._owns_store:
            await self.store.close()

    async def load(self, endpoint_id: str) -> ModelCatalog | None:
        """The endpoint's stored catalog; None when there is none (or it cannot be read, which
        is logged)."""
        return await _load(self.store, endpoint_id)

    async def save(self, catalog: ModelCatalog) -> ModelCatalog:
        """Store ``catalog`` as its endpoint's catalog; return the catalog now stored.

        It replaces the stored one (an empty catalog is stored when there is none, so the
        time and failures of that discovery are known), except:

        - an empty catalog (``count() == 0``) never replaces a non-empty one (the RunPod
          extension commits only a total > 0, §8.4): the stored catalog is kept, a warning is
          logged, and the stored catalog is returned;
        - subtypes in ``failed_subtypes`` keep the stored catalog's models, as
          SwarmSwarmBackend keeps a subtype's previous list when its ``ListModels`` fails.

        Replicas saving the same endpoint's catalog at once save one after the other.
        """
        async with self.store.transaction() as tx:
            await tx.lock(f"model catalog {catalog.endpoint_id}")
            stored = await _load(tx, catalog.endpoint_id)
            kept = self._decide(catalog, stored)
            if kept is not stored:
                await self._write(tx, kept)
        return kept

    @staticmethod
    def _decide(catalog: ModelCatalog, stored: ModelCatalog | None) -> ModelCatalog:
        if stored is None:
            return catalog
        if catalog.count() == 0 and stored.count() > 0:
            log.warning(
                "model discovery on endpoint %s found no models (failed subtypes: %s); keeping "
                "the %d models discovered at %s",
                catalog.endpoint_id,
                ", ".join(catalog.failed_subtypes) or "none",
                stored.count(),
                stored.refreshed_at,
            )
            return stored
        return catalog.keeping(stored)

    @staticmethod
    async def _write(db: Statements, catalog: ModelCatalog) -> None:
        await db.execute(
            "INSERT INTO model_catalogs (endpoint_id, refreshed_at, catalog) VALUES (?, ?, ?) "
            "ON CONFLICT (endpoint_id) DO UPDATE SET "
            "refreshed_at = excluded.refreshed_at, catalog = excluded.catalog",
            (catalog.endpoint_id, catalog.refreshed_at, json.dumps(catalog.to_json())),
        )


async def _load(db: Statements, endpoint_id: str) -> ModelCatalog | None:
    row = await db.fetchone(
        "SELECT catalog FROM model_catalogs WHERE endpoint_id = ?", (endpoint_id,)
    )
    return None if row is None else _parse(endpoint_id, row[0])


def _parse(endpoint_id: str, text: str) -> ModelCatalog | None:
    try:
        return ModelCatalog.from_json(json.loads(text))
    except ValueError as exc:
        log.warning("the stored model catalog of endpoint %s is unreadable: %s", endpoint_id, exc)
        return None

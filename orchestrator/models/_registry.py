"""Model catalogs persisted per endpoint in SQLite, so a restart needs no worker to list them."""

from __future__ import annotations

import json
import logging
import os
from typing import Final

from .._state import connect_private
from ._catalog import ModelCatalog

__all__ = ["ModelRegistry"]

log = logging.getLogger("swarmpod.models")

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS model_catalogs (
    endpoint_id TEXT PRIMARY KEY,
    refreshed_at TEXT,
    catalog TEXT NOT NULL
)
"""


class ModelRegistry:
    """Catalogs persisted per endpoint in SQLite, so a restart shows models without waking a worker.

    One row per endpoint holds its catalog as JSON (table ``model_catalogs``; the file may be
    shared with other swarmpod tables). Each call is one short transaction.

    >>> registry = ModelRegistry(":memory:")
    >>> registry.load("ep") is None
    True
    >>> stored = registry.save(ModelCatalog("ep", {"VAE": ({"name": "v.safetensors"},)}, None))
    >>> registry.load("ep") == stored, stored.names("VAE")
    (True, ('v.safetensors',))
    >>> registry.close()

    Args:
        path: the SQLite file (created 0600, folders made as needed), or ``":memory:"``.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._db = connect_private(self.path, holds="its model catalogs (RefreshModels finds them)")
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)

    def __repr__(self) -> str:
        return f"ModelRegistry({self.path!r})"

    def close(self) -> None:
        """Close the SQLite connection."""
        self._db.close()

    def load(self, endpoint_id: str) -> ModelCatalog | None:
        """The endpoint's stored catalog; None when there is none (or it cannot be read, which
        is logged)."""
        row = self._db.execute(
            "SELECT catalog FROM model_catalogs WHERE endpoint_id = ?", (endpoint_id,)
        ).fetchone()
        return None if row is None else _parse(endpoint_id, row[0])

    def save(self, catalog: ModelCatalog) -> ModelCatalog:
        """Store ``catalog`` as its endpoint's catalog; return the catalog now stored.

        It replaces the stored one (an empty catalog is stored when there is none, so the
        time and failures of that discovery are known), except:

        - an empty catalog (``count() == 0``) never replaces a non-empty one (the RunPod
          extension commits only a total > 0, §8.4): the stored catalog is kept, a warning is
          logged, and the stored catalog is returned;
        - subtypes in ``failed_subtypes`` keep the stored catalog's models, as
          SwarmSwarmBackend keeps a subtype's previous list when its ``ListModels`` fails.
        """
        self._db.execute("BEGIN IMMEDIATE")
        try:
            stored = self.load(catalog.endpoint_id)
            kept = self._decide(catalog, stored)
            if kept is not stored:
                self._write(kept)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
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

    def _write(self, catalog: ModelCatalog) -> None:
        self._db.execute(
            "INSERT INTO model_catalogs (endpoint_id, refreshed_at, catalog) VALUES (?, ?, ?) "
            "ON CONFLICT (endpoint_id) DO UPDATE SET "
            "refreshed_at = excluded.refreshed_at, catalog = excluded.catalog",
            (catalog.endpoint_id, catalog.refreshed_at, json.dumps(catalog.to_json())),
        )


def _parse(endpoint_id: str, text: str) -> ModelCatalog | None:
    try:
        return ModelCatalog.from_json(json.loads(text))
    except ValueError as exc:
        log.warning("the stored model catalog of endpoint %s is unreadable: %s", endpoint_id, exc)
        return None

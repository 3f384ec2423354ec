"""Model discovery: what an endpoint's workers offer, kept per endpoint so restarts need no worker.

Built to specs/swarmui-api.md §6 (SwarmSwarmBackend's discovery), §5.1 (``ListModels`` and the
model object) and §8.4 (the RunPod extension's model refresh):

- :func:`discover_models` asks one worker's SwarmUI for every model subtype, in parallel, as
  SwarmSwarmBackend does, and keeps whole model objects (copied, ``local: false``).
- :class:`ModelCatalog` holds them and answers ``ListModels`` itself (:meth:`ModelCatalog.listing`)
  with SwarmUI's path, depth, folder and sort rules.
- :class:`ModelRegistry` persists one catalog per endpoint in SQLite, so a restarted service lists
  models without waking a worker.
- :func:`refresh_models` is the only thing here that wakes a worker: it holds one through the
  orchestrator, discovers, saves and gives the worker back.

>>> catalog = ModelCatalog("ep", {"LoRA": ({"name": "style/ink.safetensors"},)}, None)
>>> catalog.has("style/ink", "LoRA"), catalog.count()
(True, 1)
>>> catalog.listing("LoRA")
{'folders': ['style'], 'files': []}
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

import anyio

from ._state import connect_private
from .errors import SwarmUIError

if TYPE_CHECKING:
    from ._orchestrator import Orchestrator
    from .swarmui import SwarmUIClient

__all__ = [
    "SORT_MODES",
    "SUBTYPES",
    "ModelCatalog",
    "ModelRegistry",
    "discover_models",
    "refresh_models",
    "remote_model",
]

log = logging.getLogger("swarmpod.models")

SUBTYPES: Final = (
    "Stable-Diffusion",
    "VAE",
    "LoRA",
    "Embedding",
    "ControlNet",
    "Clip",
    "ClipVision",
)
"""The model subtypes discovered, in SwarmUI's order (SwarmSwarmBackend asks for each, §6)."""

SORT_MODES: Final = ("Name", "Title", "DateCreated", "DateModified")
"""``ListModels`` sort modes (``sortBy``, matched case-insensitively, §5.1)."""

_LISTABLE: Final = frozenset((*SUBTYPES, "Wildcards"))
_SUFFIX: Final = ".safetensors"
_MIN_DEPTH: Final = 1
_MAX_DEPTH: Final = 20
_DISCOVERY_DEPTH: Final = 999  # what SwarmSwarmBackend sends; SwarmUI clamps it to 20
_NEVER: Final = 2**63 - 1  # C#'s long.MaxValue: SwarmUI's time of a model without a date
_RESOLUTION: Final = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")
_FORMAT: Final = 1
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS model_catalogs (
    endpoint_id TEXT PRIMARY KEY,
    refreshed_at TEXT,
    catalog TEXT NOT NULL
)
"""


# --- model objects --------------------------------------------------------------------------


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _resolution(model: Mapping[str, Any]) -> tuple[int, int]:
    """``(width, height)`` from ``resolution`` ``"WxH"``, else ``(0, 0)``."""
    match = _RESOLUTION.match(str(model.get("resolution") or ""))
    return (int(match[1]), int(match[2])) if match else (0, 0)


def remote_model(model: Any) -> dict[str, Any] | None:
    """A model object as this service offers it: a copy with ``local: false`` and the keys
    ``T2IModel.FromNetObject`` casts (§6) always present; None when it has no string ``name``.

    ``loaded`` keeps the worker's answer at discovery time as a bool (False when missing).
    ``standard_width`` / ``standard_height`` keep the worker's ints; when missing or not
    numbers they come from ``resolution`` (``"WxH"``), else 0 (SwarmUI's "unknown").

    >>> model = remote_model({"name": "a.safetensors", "resolution": "768x512", "local": True})
    >>> model["local"], model["loaded"], model["standard_width"], model["standard_height"]
    (False, False, 768, 512)
    >>> remote_model({"title": "no name"}) is None
    True
    """
    if not isinstance(model, Mapping) or not isinstance(model.get("name"), str):
        return None
    copy = dict(model)
    width, height = _resolution(copy)
    copy["local"] = False
    copy["loaded"] = bool(copy.get("loaded", False))
    copy["standard_width"] = _first_int(copy.get("standard_width"), width)
    copy["standard_height"] = _first_int(copy.get("standard_height"), height)
    return copy


def _first_int(value: Any, fallback: int) -> int:
    number = _as_int(value)
    return fallback if number is None else number


def _remote_models(models: Iterable[Any]) -> tuple[dict[str, Any], ...]:
    """Normalized copies, one per name (a later object of the same name replaces the earlier,
    as SwarmSwarmBackend's dictionary does), in first-seen order."""
    by_name: dict[str, dict[str, Any]] = {}
    for model in models:
        copy = remote_model(model)
        if copy is not None:
            by_name[copy["name"]] = copy
    return tuple(by_name.values())


# --- listing rules (ModelsAPI.ListModels) ------------------------------------------------------


def _folder_prefix(path: str) -> str:
    """SwarmUI's ``ListModels`` path rule: ``\\`` → ``/``, a ``/`` appended to a non-empty path,
    ``//`` collapsed, leading ``/`` dropped.

    >>> [_folder_prefix(p) for p in ("", "/", "XL", "\\\\XL\\\\Turbo", "//XL//", "XL/")]
    ['', '', 'XL/', 'XL/Turbo/', 'XL/', 'XL/']
    """
    path = path.replace("\\", "/")
    if path:
        path += "/"
    while "//" in path:
        path = path.replace("//", "/")
    return path.lstrip("/")


def _sort_mode(sort_by: str) -> str:
    wanted = sort_by.strip().lower()
    for mode in SORT_MODES:
        if mode.lower() == wanted:
            return mode
    raise ValueError(f"Invalid sort mode '{sort_by}'.")


def _text_key(text: str) -> tuple[str, str]:
    """Case-insensitive order, lowercase first on ties (like .NET's culture-aware compare)."""
    return (text.casefold(), text.swapcase())


def _time(model: Mapping[str, Any], key: str) -> int:
    number = _as_int(model.get(key))
    return _NEVER if number is None else number


def _title(model: Mapping[str, Any]) -> str:
    title = model.get("title")
    return title if isinstance(title, str) and title else str(model["name"])


def _sort_key(mode: str) -> Callable[[Mapping[str, Any]], Any]:
    def key(model: Mapping[str, Any]) -> Any:
        name = _text_key(str(model["name"]))
        if mode == "Title":
            return (_text_key(_title(model)), name)
        if mode == "DateCreated":
            return (-_time(model, "time_created"), name)
        if mode == "DateModified":
            return (-_time(model, "time_modified"), name)
        return name

    return key


def _below(
    models: Iterable[dict[str, Any]], prefix: str, depth: int
) -> tuple[set[str], list[dict[str, Any]]]:
    """The folders (relative to ``prefix``, up to ``depth`` levels) and the files at most
    ``depth - 1`` folders below ``prefix``."""
    folders: set[str] = set()
    files: list[dict[str, Any]] = []
    for model in models:
        name = str(model["name"])
        if not name.startswith(prefix) or len(name) <= len(prefix):
            continue
        subfolders = name[len(prefix) :].split("/")[:-1]
        for level in range(1, min(depth, len(subfolders)) + 1):
            folders.add("/".join(subfolders[:level]))
        if len(subfolders) < depth:
            files.append(model)
    return folders, files


def _presented(model: dict[str, Any], subtype: str, data_images: bool) -> dict[str, Any]:
    copy = dict(model)
    preview = copy.get("preview_image")
    if not data_images and isinstance(preview, str) and preview.startswith("data:"):
        copy["preview_image"] = f"/ViewSpecial/{subtype}/{copy['name']}"
    return copy


# --- the catalog -----------------------------------------------------------------------------


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso_utc(when: dt.datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ``; a naive time is taken as UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ModelCatalog:
    """Every model an endpoint's workers offer, by subtype, as full SwarmUI model objects.

    On construction every model object is copied and made a remote copy (see
    :func:`remote_model`): ``local`` is False and ``loaded`` (bool), ``standard_width`` and
    ``standard_height`` (ints) are always present; objects without a string ``name`` are
    dropped, and a name appears once per subtype. ``models`` is read-only.

    >>> catalog = ModelCatalog("ep", {"Stable-Diffusion": (
    ...     {"name": "XL/base.safetensors", "title": "Base"}, {"name": "tiny.ckpt"})}, None)
    >>> catalog.names(), catalog.has("XL/base"), catalog.has("base")
    (('XL/base.safetensors', 'tiny.ckpt'), True, False)

    Attributes:
        endpoint_id: the RunPod endpoint whose workers were asked (``*`` for a merged view).
        models: subtype → model objects, in the order the worker listed them (by name).
        refreshed_at: when the discovery ran, ISO 8601 UTC (``2026-01-01T12:00:00Z``), or None.
        failed_subtypes: subtypes whose ``ListModels`` failed at that discovery (their models,
            if any, are from an earlier discovery; see :meth:`ModelRegistry.save`).
    """

    endpoint_id: str
    models: Mapping[str, tuple[dict[str, Any], ...]]
    refreshed_at: str | None
    failed_subtypes: tuple[str, ...] = ()
    _names: Mapping[str, frozenset[str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        models = {subtype: _remote_models(objs) for subtype, objs in self.models.items()}
        names = {subtype: frozenset(m["name"] for m in objs) for subtype, objs in models.items()}
        object.__setattr__(self, "models", MappingProxyType(models))
        object.__setattr__(self, "_names", MappingProxyType(names))
        object.__setattr__(self, "failed_subtypes", tuple(self.failed_subtypes))

    def count(self) -> int:
        """How many models all subtypes hold together (``GetStatus``' ``model_count``)."""
        return sum(len(objs) for objs in self.models.values())

    def names(self, subtype: str = "Stable-Diffusion") -> tuple[str, ...]:
        """The names (relative paths with extension) of one subtype; empty for unknown ones."""
        return tuple(str(model["name"]) for model in self.models.get(subtype, ()))

    def has(self, name: str, subtype: str = "Stable-Diffusion") -> bool:
        """Whether ``name`` is offered, written with or without ``.safetensors`` (§6).

        Names are exact relative paths (``Sub/x``), as SwarmSwarmBackend's eligibility check
        compares them; there is no fuzzy matching here.
        """
        known = self._names.get(subtype, frozenset())
        return any(
            candidate in known for candidate in (name, name + _SUFFIX, name.removesuffix(_SUFFIX))
        )

    def listing(
        self,
        subtype: str = "Stable-Diffusion",
        *,
        path: str = "",
        depth: int = 1,
        sort_by: str = "Name",
        sort_reverse: bool = False,
        data_images: bool = True,
    ) -> dict[str, Any]:
        """A ``ListModels`` answer ``{"folders": [...], "files": [...]}`` with SwarmUI's rules.

        ``path`` is normalized (``\\`` → ``/``, ``//`` collapsed, leading ``/`` dropped) and
        used as a folder prefix; ``depth`` is clamped to 1..20; files more than ``depth - 1``
        folders below ``path`` are skipped; ``folders`` lists the folders below ``path``
        (relative to it, as SwarmUI does) up to ``depth`` levels, sorted. Files are sorted by
        ``Name``, ``Title`` (then name), ``DateCreated`` or ``DateModified`` (newest first,
        undated first, then name), case-insensitively, then reversed with ``sort_reverse``.
        ``Wildcards`` is a valid subtype that lists nothing (they are not discovered).
        ``data_images=False`` turns data-URL previews into ``/ViewSpecial/<subtype>/<name>``
        as SwarmUI does for remote models. The files are copies.

        Raises:
            ValueError: ``Invalid sort mode '<sort_by>'.`` or ``Invalid sub-type.`` (SwarmUI's
                texts, checked in that order: answer them as ``{"error": str(exc)}``).
        """
        mode = _sort_mode(sort_by)
        if subtype not in _LISTABLE:
            raise ValueError("Invalid sub-type.")
        depth = min(max(depth, _MIN_DEPTH), _MAX_DEPTH)
        folders, files = _below(self.models.get(subtype, ()), _folder_prefix(path), depth)
        files.sort(key=_sort_key(mode))
        if sort_reverse:
            files.reverse()
        return {
            "folders": sorted(folders, key=_text_key),
            "files": [_presented(model, subtype, data_images) for model in files],
        }

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (what :class:`ModelRegistry` stores); :meth:`from_json` reads it."""
        return {
            "format": _FORMAT,
            "endpoint_id": self.endpoint_id,
            "refreshed_at": self.refreshed_at,
            "failed_subtypes": list(self.failed_subtypes),
            "models": {subtype: list(objs) for subtype, objs in self.models.items()},
        }

    @classmethod
    def from_json(cls, data: Any) -> ModelCatalog:
        """Read what :meth:`to_json` wrote.

        Raises:
            ValueError: ``data`` is not such an object.
        """
        if not isinstance(data, Mapping) or not isinstance(data.get("endpoint_id"), str):
            raise ValueError("a model catalog needs an object with a string 'endpoint_id'")
        models = data.get("models")
        refreshed = data.get("refreshed_at")
        failed = data.get("failed_subtypes", [])
        if not isinstance(models, Mapping) or not all(isinstance(v, list) for v in models.values()):
            raise ValueError("a model catalog's 'models' must map subtypes to lists")
        if refreshed is not None and not isinstance(refreshed, str):
            raise ValueError("a model catalog's 'refreshed_at' must be a string or null")
        if not isinstance(failed, list):
            raise ValueError("a model catalog's 'failed_subtypes' must be a list")
        return cls(
            endpoint_id=data["endpoint_id"],
            models={str(subtype): tuple(objs) for subtype, objs in models.items()},
            refreshed_at=refreshed,
            failed_subtypes=tuple(str(subtype) for subtype in failed),
        )

    def keeping(self, earlier: ModelCatalog) -> ModelCatalog:
        """This catalog with ``earlier``'s models for the subtypes whose discovery failed now
        (SwarmSwarmBackend keeps a subtype's previous list when its ``ListModels`` fails)."""
        carried = {s: earlier.models[s] for s in self.failed_subtypes if earlier.models.get(s)}
        if not carried:
            return self
        return replace(self, models={**self.models, **carried})


# --- persistence -------------------------------------------------------------------------------


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


# --- discovery ---------------------------------------------------------------------------------


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
        refreshed_at=_iso_utc((clock or _utc_now)()),
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
    stored = registry.save(catalog)
    log.info(
        "endpoint %s: %d models discovered, %d in the catalog",
        endpoint_id,
        catalog.count(),
        stored.count(),
    )
    return stored

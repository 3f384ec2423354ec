"""The model catalog: every model an endpoint's workers offer, answering ``ListModels``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Final

from ._listing import (
    LISTABLE,
    MAX_DEPTH,
    MIN_DEPTH,
    below,
    folder_prefix,
    presented,
    sort_key,
    sort_mode,
    text_key,
)
from ._objects import remote_models

__all__ = ["ModelCatalog", "iso_utc", "utc_now"]

_SUFFIX: Final = ".safetensors"
_FORMAT: Final = 1


def utc_now() -> dt.datetime:
    """The real time, in UTC."""
    return dt.datetime.now(dt.UTC)


def iso_utc(when: dt.datetime) -> str:
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
        models = {subtype: remote_models(objs) for subtype, objs in self.models.items()}
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
        mode = sort_mode(sort_by)
        if subtype not in LISTABLE:
            raise ValueError("Invalid sub-type.")
        depth = min(max(depth, MIN_DEPTH), MAX_DEPTH)
        folders, files = below(self.models.get(subtype, ()), folder_prefix(path), depth)
        files.sort(key=sort_key(mode))
        if sort_reverse:
            files.reverse()
        return {
            "folders": sorted(folders, key=text_key),
            "files": [presented(model, subtype, data_images) for model in files],
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

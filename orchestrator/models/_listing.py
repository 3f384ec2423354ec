"""SwarmUI's ``ListModels`` rules (``ModelsAPI.ListModels``, specs/swarmui-api.md §5.1):
path prefixes, depth, folders, sort modes, previews."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from ._objects import as_int

__all__ = [
    "LISTABLE",
    "MAX_DEPTH",
    "MIN_DEPTH",
    "SORT_MODES",
    "SUBTYPES",
    "below",
    "folder_prefix",
    "presented",
    "sort_key",
    "sort_mode",
    "text_key",
]

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

LISTABLE: Final = frozenset((*SUBTYPES, "Wildcards"))
"""The subtypes ``ListModels`` accepts (``Wildcards`` lists nothing: they are not discovered)."""
MIN_DEPTH: Final = 1
MAX_DEPTH: Final = 20
_NEVER: Final = 2**63 - 1  # C#'s long.MaxValue: SwarmUI's time of a model without a date


def folder_prefix(path: str) -> str:
    """SwarmUI's ``ListModels`` path rule: ``\\`` → ``/``, a ``/`` appended to a non-empty path,
    ``//`` collapsed, leading ``/`` dropped.

    >>> [folder_prefix(p) for p in ("", "/", "XL", "\\\\XL\\\\Turbo", "//XL//", "XL/")]
    ['', '', 'XL/', 'XL/Turbo/', 'XL/', 'XL/']
    """
    path = path.replace("\\", "/")
    if path:
        path += "/"
    while "//" in path:
        path = path.replace("//", "/")
    return path.lstrip("/")


def sort_mode(sort_by: str) -> str:
    """The sort mode ``sort_by`` names (case-insensitive), or SwarmUI's refusal."""
    wanted = sort_by.strip().lower()
    for mode in SORT_MODES:
        if mode.lower() == wanted:
            return mode
    raise ValueError(f"Invalid sort mode '{sort_by}'.")


def text_key(text: str) -> tuple[str, str]:
    """Case-insensitive order, lowercase first on ties (like .NET's culture-aware compare)."""
    return (text.casefold(), text.swapcase())


def _time(model: Mapping[str, Any], key: str) -> int:
    number = as_int(model.get(key))
    return _NEVER if number is None else number


def _title(model: Mapping[str, Any]) -> str:
    title = model.get("title")
    return title if isinstance(title, str) and title else str(model["name"])


def sort_key(mode: str) -> Callable[[Mapping[str, Any]], Any]:
    """The sort key of ``mode`` (names break ties)."""

    def key(model: Mapping[str, Any]) -> Any:
        name = text_key(str(model["name"]))
        if mode == "Title":
            return (text_key(_title(model)), name)
        if mode == "DateCreated":
            return (-_time(model, "time_created"), name)
        if mode == "DateModified":
            return (-_time(model, "time_modified"), name)
        return name

    return key


def below(
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


def presented(model: dict[str, Any], subtype: str, data_images: bool) -> dict[str, Any]:
    """A copy as ``ListModels`` answers it (data-URL previews as links unless asked)."""
    copy = dict(model)
    preview = copy.get("preview_image")
    if not data_images and isinstance(preview, str) and preview.startswith("data:"):
        copy["preview_image"] = f"/ViewSpecial/{subtype}/{copy['name']}"
    return copy

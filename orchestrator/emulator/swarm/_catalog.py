"""The fake's model catalog: listing, lookup and model objects (specs/swarmui-api.md §4.2, §5)."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from typing import Any, Final

from ._args import RouteError
from ._config import ModelSpec
from ._render import render_jpeg_preview

__all__ = ["SORT_MODES", "SUBTYPES", "Catalog", "fuzzy_match"]

SUBTYPES: Final = (
    "Stable-Diffusion",
    "VAE",
    "LoRA",
    "Embedding",
    "ControlNet",
    "Clip",
    "ClipVision",
    "Wildcards",
)
SORT_MODES: Final = ("name", "title", "datecreated", "datemodified")
_SUFFIX: Final = ".safetensors"
_CLEAN: Final = re.compile(r"[\s\[\]]")
_TIME_CREATED: Final = 1_700_000_000


def _clean(text: str) -> str:
    return _CLEAN.sub("", text.lower())


def fuzzy_match(value: str, options: Iterable[str]) -> str | None:
    """SwarmUI's list match (§4.2): equal after cleaning, else the shortest option containing it.

    >>> fuzzy_match("sd_xl_base_1.0", ["Official/sd_xl_base_1.0", "other"])
    'Official/sd_xl_base_1.0'
    >>> fuzzy_match("nope", ["a", "b"]) is None
    True
    """
    wanted = _clean(value)
    choices = list(options)
    for option in choices:
        if _clean(option) == wanted:
            return option
    containing = [option for option in choices if wanted in _clean(option)]
    return min(containing, key=len) if containing else None


class Catalog:
    """The models a fake SwarmUI knows, by subtype."""

    def __init__(self, models: Iterable[ModelSpec]) -> None:
        self._models = sorted(models, key=lambda model: model.name)

    def of(self, subtype: str) -> list[ModelSpec]:
        """The models of one subtype, sorted by name."""
        return [model for model in self._models if model.subtype == subtype]

    def find_exact(self, name: str, subtype: str = "Stable-Diffusion") -> ModelSpec | None:
        """A model by exact name, trying ``name + ".safetensors"`` first (§5.2)."""
        by_name = {model.name: model for model in self.of(subtype)}
        return by_name.get(name + _SUFFIX) or by_name.get(name)

    def resolve_param(self, value: str, subtype: str = "Stable-Diffusion") -> ModelSpec | None:
        """A model param value, matched without ``.safetensors`` by the fuzzy rule (§4.2)."""
        by_stem = {model.name.removesuffix(_SUFFIX): model for model in self.of(subtype)}
        found = fuzzy_match(value.removesuffix(_SUFFIX), by_stem)
        return None if found is None else by_stem[found]

    def model_object(
        self, model: ModelSpec, *, loaded: bool, data_images: bool, index: int = 0
    ) -> dict[str, Any]:
        """The JSON model object with every key of ``T2IModel.ToNetObject`` (§5.1)."""
        if data_images:
            jpeg = render_jpeg_preview(model.name, 0, 0)
            preview: str | None = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
        else:
            preview = f"/ViewSpecial/{model.subtype}/{model.name}?editid={index}"
        created = _TIME_CREATED + index
        return {
            "name": model.name,
            "title": model.display_title,
            "author": "swarmpod emulator",
            "description": f"Emulated {model.subtype} model.",
            "preview_image": preview,
            "loaded": loaded,
            "architecture": model.architecture,
            "class": model.architecture,
            "compat_class": model.architecture.split("/")[0],
            "resolution": f"{model.standard_width}x{model.standard_height}",
            "standard_width": model.standard_width,
            "standard_height": model.standard_height,
            "license": "",
            "date": "2024-01-01",
            "prediction_type": "",
            "usage_hint": "",
            "trigger_phrase": "",
            "merged_from": "",
            "tags": None,
            "is_supported_model_format": True,
            "is_negative_embedding": False,
            "lora_default_weight": "",
            "lora_default_confinement": "",
            "local": True,
            "time_created": created,
            "time_modified": created,
            "hash": "",
            "hash_sha256": "",
            "special_format": "",
        }

    def listing(
        self,
        *,
        path: str,
        depth: int,
        subtype: str,
        sort_by: str,
        sort_reverse: bool,
        data_images: bool,
        loaded: str | None,
    ) -> dict[str, Any]:
        """The ``ListModels`` answer (§5.1): folders and files below ``path`` up to ``depth``."""
        if subtype not in SUBTYPES:
            raise RouteError("Invalid sub-type.")
        mode = sort_by.lower()
        if mode not in SORT_MODES:
            raise RouteError(f"Invalid sort mode '{sort_by}'.")
        depth = min(max(depth, 1), 20)
        prefix = re.sub("/+", "/", path.replace("\\", "/")).lstrip("/")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        folders: set[str] = set()
        files: list[tuple[int, ModelSpec]] = []
        for index, model in enumerate(self.of(subtype)):
            if not model.name.startswith(prefix) or len(model.name) == len(prefix):
                continue
            parts = model.name[len(prefix) :].split("/")[:-1]
            for level in range(1, min(len(parts), depth) + 1):
                folders.add(prefix + "/".join(parts[:level]))
            if len(parts) < depth:
                files.append((index, model))
        if mode == "title":
            files.sort(key=lambda item: item[1].display_title.lower())
        if sort_reverse:
            files.reverse()
        return {
            "folders": sorted(folders),
            "files": [
                self.model_object(
                    model, loaded=model.name == loaded, data_images=data_images, index=index
                )
                for index, model in files
            ],
        }

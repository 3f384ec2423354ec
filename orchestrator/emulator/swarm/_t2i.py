"""Parsing and validating T2I parameters the way SwarmUI does (specs/swarmui-api.md §4)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from ._args import RouteError, arg_int
from ._catalog import Catalog, fuzzy_match

__all__ = ["T2IRequest", "clean_id", "param_list", "parse_t2i"]

_RENAMED: Final = {
    "saveintermediateimages": "outputintermediateimages",
    "textvideofps": "videofps",
    "textvideoboomerang": "videoboomerang",
    "textvideoformat": "videoformat",
}
_IGNORE_IF: Final = {
    "negativeprompt": "",
    "images": "1",
    "vae": "None",
    "refinermodel": "(Use Base)",
    "refinerupscale": "1",
}
_INTEGERS: Final = {
    "images": ("Images", 1, 10000),
    "seed": ("Seed", -1, 2**63 - 1),
    "steps": ("Steps", 0, 500),
    "width": ("Width", 64, 16384),
    "height": ("Height", 64, 16384),
    "sidelength": ("Side Length", 64, 16384),
    "batchsize": ("Batch Size", 1, 100),
    "clipstopatlayer": ("CLIP Stop At Layer", -24, -1),
    "variationseed": ("Variation Seed", -1, 2**32 - 1),
    "refinersteps": ("Refiner Steps", 1, 200),
    "wildcardseed": ("Wildcard Seed", -1, 2**63 - 1),
}
_DECIMALS: Final = {
    "cfgscale": ("CFG Scale", 0.0, 100.0),
    "initimagecreativity": ("Init Image Creativity", 0.0, 1.0),
    "variationseedstrength": ("Variation Seed Strength", 0.0, 1.0),
    "refinercontrolpercentage": ("Refiner Control Percentage", 0.0, 1.0),
    "refinerupscale": ("Refiner Upscale", 0.25, 8.0),
    "refinercfgscale": ("Refiner CFG Scale", 0.0, 100.0),
    "fluxguidancescale": ("Flux Guidance Scale", 0.0, 100.0),
    "controlnetstrength": ("ControlNet Strength", 0.0, 2.0),
}
_BOOLEANS: Final = {
    "donotsave": "Do Not Save",
    "donotsaveintermediates": "Do Not Save Intermediates",
    "outputintermediateimages": "Output Intermediate Images",
    "nopreviews": "No Previews",
    "noloadmodels": "No Load Models",
    "noseedincrement": "No Seed Increment",
    "continueaftererrors": "Continue After Errors",
    "forwardswarmdata": "Forward Swarm Data",
    "forwardrawbackenddata": "Forward Raw Backend Data",
    "seamlesstileable": "Seamless Tileable",
}
_IMAGES: Final = {
    "initimage": "Init Image",
    "maskimage": "Mask Image",
    "controlnetimageinput": "ControlNet Image Input",
}
_NOT_A_TO_Z: Final = re.compile(r"[^a-z]")
_BASE64: Final = re.compile(r"^[A-Za-z0-9+/=]{10,}$")
_SERVER_PATHS: Final = ("inputs/", "raw/", "Starred/")
_SPECIAL_KEYS: Final = frozenset({"session_id", "presets", "extra_metadata"})
_PARAM_PERMISSIONS: Final = {
    "model": ("Model", "model_params"),
    "exactbackendid": ("Exact Backend ID", "param_backend_id"),
    "internalbackendtype": ("[Internal] Backend Type", "param_backend_type"),
    "controlnetimageinput": ("ControlNet Image Input", "param_controlnet"),
    "controlnetmodel": ("ControlNet Model", "param_controlnet"),
    "controlnetstrength": ("ControlNet Strength", "param_controlnet"),
    "videomodel": ("Video Model", "param_video"),
    "videoframes": ("Video Frames", "param_video"),
}


def clean_id(key: str) -> str:
    """SwarmUI's parameter-ID cleaning (§4.1) plus its renames of old IDs.

    >>> clean_id("CFG_Scale"), clean_id("saveintermediateimages")
    ('cfgscale', 'outputintermediateimages')
    """
    cleaned = _NOT_A_TO_Z.sub("", key.strip().lower())
    return _RENAMED.get(cleaned, cleaned)


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "\n|||\n".join(_as_text(item) for item in value)
    return str(value)


def _invalid(name: str, detail: str) -> RouteError:
    return RouteError(f"Invalid value for parameter {name}: {detail}")


def _integer(key: str, text: str) -> int:
    name, low, high = _INTEGERS[key]
    try:
        number = int(text.strip())
    except ValueError:
        raise _invalid(
            name, f"Invalid integer value for param {name} - '{text}' - must be a valid integer"
        ) from None
    if not low <= number <= high:
        raise _invalid(
            name,
            f"Invalid integer value for param {name} - '{text}' - must be between {low} and {high}",
        )
    return number


def _decimal(key: str, text: str) -> float:
    name, low, high = _DECIMALS[key]
    try:
        number = float(text.strip())
    except ValueError:
        raise _invalid(
            name, f"Invalid decimal value for param {name} - '{text}' - must be a valid decimal"
        ) from None
    if not low <= number <= high:
        raise _invalid(
            name,
            f"Invalid decimal value for param {name} - '{text}' - must be between {low:g} and "
            f"{high:g}",
        )
    return number


def _boolean(key: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered not in ("true", "false"):
        name = _BOOLEANS[key]
        raise _invalid(
            name, f"Invalid boolean value for param {name} - '{text}' - must be true or false"
        )
    return lowered == "true"


def _image(key: str, text: str) -> str:
    payload = text.split(",", 1)[1] if text.startswith("data:") else text
    if text.startswith(_SERVER_PATHS) or _BASE64.match(payload):
        return payload
    name = _IMAGES[key]
    raise _invalid(name, f"Invalid IMAGE value for param {name} - must be base64 or a file path")


@dataclass(frozen=True)
class T2IRequest:
    """A validated generation request: the route arg ``images`` plus the T2I params used.

    Attributes:
        images: how many images (the required route argument).
        params: every known-or-unknown parameter by cleaned ID, after IgnoreIf, as text.
        prompt: the prompt (``""`` when absent).
        model: the resolved model name, or None to use the loaded/first model.
        width: image width.
        height: image height.
        steps: sampling steps.
        seed: the requested seed (``-1`` = random).
        donotsave: return data URLs instead of saving.
        nopreviews: no ``preview`` in ``gen_progress``.
        noseedincrement: every image uses the same seed.
        forwardswarmdata: send ``raw_swarm_data`` before each image.
    """

    images: int
    params: dict[str, str]
    prompt: str
    model: str | None
    width: int
    height: int
    steps: int
    seed: int
    donotsave: bool
    nopreviews: bool
    noseedincrement: bool
    forwardswarmdata: bool


def _size(params: dict[str, str], default: tuple[int, int]) -> tuple[int, int]:
    raw = params.get("rawresolution")
    if raw:
        match = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", raw)
        if match is None:
            raise _invalid("Raw Resolution", f"Invalid value '{raw}', must be like 1024x1024")
        return int(match.group(1)), int(match.group(2))
    width = _integer("width", params["width"]) if "width" in params else default[0]
    height = _integer("height", params["height"]) if "height" in params else default[1]
    return width, height


def _everything(permission: str) -> bool:
    return True


def parse_t2i(
    body: dict[str, Any],
    catalog: Catalog,
    backend_ids: list[str],
    permitted: Callable[[str], bool] = _everything,
) -> T2IRequest:
    """Validate a generate body like SwarmUI: bind ``images``, clean IDs, check values.

    ``permitted(permission)`` says whether the user holds a permission; parameters that need
    one the user lacks are refused (§4.1).

    Raises:
        RouteError: with SwarmUI's text for the first invalid value (answered as HTTP 200).
    """
    images = arg_int(body, "images")
    params: dict[str, str] = {}
    for key, value in body.items():
        if key in _SPECIAL_KEYS or key == "images" or value is None:
            continue
        cleaned = clean_id(key)
        text = _as_text(value)
        if _IGNORE_IF.get(cleaned) == text:
            params.pop(cleaned, None)
            continue
        params[cleaned] = text
    _integer("images", str(images))
    for key, text in params.items():
        if key in _PARAM_PERMISSIONS and not permitted(_PARAM_PERMISSIONS[key][1]):
            raise RouteError(
                f"You do not have permission to use parameter {_PARAM_PERMISSIONS[key][0]}."
            )
        if key in _INTEGERS:
            _integer(key, text)
        elif key in _DECIMALS:
            _decimal(key, text)
        elif key in _BOOLEANS:
            _boolean(key, text)
        elif key in _IMAGES:
            _image(key, text)
    model: str | None = None
    chosen = params.get("model", "")
    if chosen and chosen != "(None)":
        spec = catalog.resolve_param(chosen)
        if spec is None:
            raise _invalid(
                "Model",
                f"Invalid model value for param Model - '{chosen}' - are you sure that model "
                "name is correct?",
            )
        model = spec.name
    if "exactbackendid" in params:
        wanted = params["exactbackendid"]
        if fuzzy_match(wanted, backend_ids) is None:
            raise _invalid(
                "Exact Backend ID",
                f"Invalid value for param Exact Backend ID - '{wanted}' - must be one of: "
                + ", ".join(backend_ids),
            )
    standard = (512, 512)
    width, height = _size(params, standard)
    return T2IRequest(
        images=images,
        params=params,
        prompt=params.get("prompt", ""),
        model=model,
        width=width,
        height=height,
        steps=_integer("steps", params["steps"]) if "steps" in params else 20,
        seed=_integer("seed", params["seed"]) if "seed" in params else -1,
        donotsave=_boolean("donotsave", params.get("donotsave", "false")),
        nopreviews=_boolean("nopreviews", params.get("nopreviews", "false")),
        noseedincrement=_boolean("noseedincrement", params.get("noseedincrement", "false")),
        forwardswarmdata=_boolean("forwardswarmdata", params.get("forwardswarmdata", "false")),
    )


def param_list() -> list[dict[str, Any]]:
    """The ``list`` of ``ListT2IParams``/``TriggerRefresh``: the parameters the fake validates."""
    entries: list[dict[str, Any]] = [
        {"id": "prompt", "name": "Prompt", "type": "text", "default": ""},
        {"id": "negativeprompt", "name": "Negative Prompt", "type": "text", "default": ""},
        {"id": "model", "name": "Model", "type": "model", "default": ""},
    ]
    for key, (name, low, high) in _INTEGERS.items():
        entries.append({"id": key, "name": name, "type": "integer", "min": low, "max": high})
    for key, (name, low_f, high_f) in _DECIMALS.items():
        entries.append({"id": key, "name": name, "type": "decimal", "min": low_f, "max": high_f})
    for key, name in _BOOLEANS.items():
        entries.append({"id": key, "name": name, "type": "boolean", "default": False})
    for key, name in _IMAGES.items():
        entries.append({"id": key, "name": name, "type": "image", "default": None})
    return entries

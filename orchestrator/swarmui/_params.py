"""Turning caller parameters into a SwarmUI T2I request body (specs/swarmui-api.md §4)."""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Mapping
from typing import Any, Final

from PIL import Image

__all__ = ["ROUTE_ARGS", "clean_param_id", "serialize_params"]

ROUTE_ARGS: Final = frozenset({"images", "session_id"})
"""Keys that are route arguments of the generate routes, not T2I parameters (§3.1)."""

_NOT_A_TO_Z: Final = re.compile(r"[^a-z]")
_MODEL_SUFFIX: Final = ".safetensors"
_MODEL_ID_ENDINGS: Final = ("model", "vae")
_LIST_KEYS: Final = frozenset({"presets"})


def clean_param_id(key: str) -> str:
    """Clean a parameter ID the way SwarmUI does (§4.1): lowercase, keep only ``a`` to ``z``.

    >>> clean_param_id("CFG Scale")
    'cfgscale'
    >>> clean_param_id("negative_prompt")
    'negativeprompt'
    >>> clean_param_id("T5-XXL Model")
    'txxlmodel'
    """
    return _NOT_A_TO_Z.sub("", key.strip().lower())


def _is_model_param(key: str) -> bool:
    return clean_param_id(key).endswith(_MODEL_ID_ENDINGS)


def _is_image(value: object) -> bool:
    return isinstance(value, bytes | bytearray | Image.Image)


def _image_base64(value: bytes | bytearray | Image.Image) -> str:
    if isinstance(value, Image.Image):
        buffer = io.BytesIO()
        value.save(buffer, format="PNG")
        value = buffer.getvalue()
    return base64.b64encode(bytes(value)).decode("ascii")


def _strip_model_suffix(name: str) -> str:
    return name.removesuffix(_MODEL_SUFFIX)


def _scalar(key: str, value: object) -> Any:
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return _strip_model_suffix(value) if _is_model_param(key) else value
    if _is_image(value):
        return _image_base64(value)  # type: ignore[arg-type]
    return str(value)


def _serialize_value(key: str, value: object) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, list | tuple):
        if clean_param_id(key) in _LIST_KEYS:
            return [str(item) for item in value]
        if value and all(_is_image(item) for item in value):
            return "|".join(_image_base64(item) for item in value)
        return ",".join(str(_scalar(key, item)) for item in value)
    return _scalar(key, value)


def serialize_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Build the T2I part of a SwarmUI request body from caller parameters (§4.2, §4.4).

    Every key is passed through as given (SwarmUI cleans IDs itself and ignores unknown
    ones); only the route arguments ``images`` and ``session_id`` are left out, because
    ``SwarmUIClient.generate`` sets them. Values are encoded as SwarmSwarmBackend does:

    - ``str``/``int``/``float``/``bool`` stay native JSON values;
    - ``None`` leaves the parameter out (SwarmUI then uses its default);
    - an image (``bytes``, ``bytearray`` or a Pillow image, saved as PNG) becomes raw base64
      without a ``data:`` prefix; a list of images becomes base64 strings joined by ``|``;
    - any other list or tuple (``loras``, ``loraweights``) becomes a comma-joined string,
      except ``presets``, which stays a list of names;
    - a mapping (``extra_metadata``) is sent as a JSON object;
    - a model parameter (its cleaned ID ends in ``model`` or ``vae``: ``model``,
      ``refinermodel``, ``vae``, ``controlnetmodel``, ``videomodel``, ...) loses a trailing
      ``.safetensors``;
    - anything else is sent as its ``str``.

    >>> serialize_params({"prompt": "a cat", "steps": 20, "cfg_scale": 7.5, "seed": None})
    {'prompt': 'a cat', 'steps': 20, 'cfg_scale': 7.5}
    >>> serialize_params({"Model": "OfficialStableDiffusion/sd_xl_base_1.0.safetensors"})
    {'Model': 'OfficialStableDiffusion/sd_xl_base_1.0'}
    >>> serialize_params({"loras": ["a", "b"], "loraweights": (0.5, 1)})
    {'loras': 'a,b', 'loraweights': '0.5,1'}
    >>> serialize_params({"initimage": b"PNG!", "presets": ["fast"], "images": 3})
    {'initimage': 'UE5HIQ==', 'presets': ['fast']}
    >>> serialize_params({"promptimages": [b"ab", b"cd"], "extra_metadata": {"who": "me"}})
    {'promptimages': 'YWI=|Y2Q=', 'extra_metadata': {'who': 'me'}}
    """
    body: dict[str, Any] = {}
    for key, value in params.items():
        if value is None or key in ROUTE_ARGS:
            continue
        body[key] = _serialize_value(key, value)
    return body

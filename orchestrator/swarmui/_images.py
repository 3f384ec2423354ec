"""Decoding and checking the images SwarmUI returns (specs/swarmui-api.md §3.1, §3.2)."""

from __future__ import annotations

import base64
import binascii
import io
import json
from typing import Any

from PIL import Image

from orchestrator.errors import ImageDecodeError

from ._models import GeneratedImage

__all__ = ["decode_data_url", "decode_image", "parse_metadata", "seed_from_metadata"]

_DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def decode_data_url(url: str) -> tuple[str, bytes]:
    """Split a ``data:<mime>;base64,<b64>`` URL into its MIME type and bytes.

    >>> decode_data_url("data:image/png;base64,UE5H")
    ('image/png', b'PNG')

    Raises:
        ImageDecodeError: the text is not a base64 data URL or its base64 is invalid.
    """
    header, comma, payload = url.partition(",")
    if not url.startswith("data:") or not comma or not header.endswith(";base64"):
        raise ImageDecodeError(f"Expected a base64 data URL from SwarmUI, got {url[:40]!r}...")
    mime = header[len("data:") : -len(";base64")] or "application/octet-stream"
    try:
        return mime, base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageDecodeError(f"SwarmUI returned an image whose base64 is invalid: {exc}") from exc


def parse_metadata(text: str | None) -> dict[str, Any] | None:
    """Parse SwarmUI's metadata JSON text (WS ``metadata`` or PNG ``parameters``); None if absent.

    Text that is not a JSON object is kept whole under ``"parameters"``.

    >>> parse_metadata('{"sui_image_params": {"seed": 5}}')
    {'sui_image_params': {'seed': 5}}
    >>> parse_metadata("a cat, Steps: 20")
    {'parameters': 'a cat, Steps: 20'}
    """
    if not text:
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        return {"parameters": text}
    return parsed if isinstance(parsed, dict) else {"parameters": text}


def seed_from_metadata(metadata: dict[str, Any] | None) -> int | None:
    """The ``sui_image_params.seed`` of SwarmUI metadata, or None.

    >>> seed_from_metadata({"sui_image_params": {"seed": "42"}})
    42
    """
    params = (metadata or {}).get("sui_image_params")
    if not isinstance(params, dict):
        return None
    try:
        return int(params["seed"])
    except (KeyError, TypeError, ValueError):
        return None


def decode_image(
    data: bytes,
    mime: str,
    *,
    batch_index: int,
    seed: int | None,
    metadata: dict[str, Any] | None = None,
    expected_size: tuple[int, int] | None = None,
) -> GeneratedImage:
    """Check that ``data`` is a whole image and describe it.

    The image is opened and verified with Pillow; its size is read from it and its PNG
    ``parameters`` text is used when ``metadata`` is not given. A seed found in the metadata
    wins over ``seed``.

    Raises:
        ImageDecodeError: the bytes are not a valid image, or its size differs from
            ``expected_size`` (width, height).
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            text = image.info.get("parameters")
            image.verify()
    except _DECODE_ERRORS as exc:
        raise ImageDecodeError(
            f"Image {batch_index} from SwarmUI is not a valid image ({mime}, {len(data)} bytes): "
            f"{exc}"
        ) from exc
    if expected_size is not None and (width, height) != tuple(expected_size):
        want_w, want_h = expected_size
        raise ImageDecodeError(
            f"Image {batch_index} from SwarmUI is {width}x{height}, expected {want_w}x{want_h}."
        )
    if metadata is None:
        metadata = parse_metadata(text if isinstance(text, str) else None)
    found = seed_from_metadata(metadata)
    return GeneratedImage(
        data=data,
        mime=mime,
        width=width,
        height=height,
        seed=seed if found is None else found,
        batch_index=batch_index,
        metadata=metadata,
    )

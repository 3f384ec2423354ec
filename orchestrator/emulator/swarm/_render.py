"""Deterministic, cheap images for the fake SwarmUI: real PNGs made with Pillow."""

from __future__ import annotations

import hashlib
import io
import json
import random

from PIL import Image
from PIL.PngImagePlugin import PngInfo

__all__ = ["image_params", "render_jpeg_preview", "render_png"]

_PATTERN = 6


def _pattern(prompt: str, seed: int) -> Image.Image:
    digest = hashlib.sha256(f"{prompt}\0{seed}".encode()).digest()
    rng = random.Random(digest)
    tile = Image.new("RGB", (_PATTERN, _PATTERN))
    tile.putdata(
        [
            (rng.randrange(256), rng.randrange(256), rng.randrange(256))
            for _ in range(_PATTERN * _PATTERN)
        ]
    )
    return tile


def image_params(
    prompt: str, seed: int, width: int, height: int, model: str | None = None
) -> dict[str, object]:
    """The ``sui_image_params`` SwarmUI records for an image (prompt, seed, size, model)."""
    params: dict[str, object] = {"prompt": prompt, "seed": seed, "width": width, "height": height}
    if model is not None:
        params["model"] = model
    return params


def render_png(
    prompt: str, seed: int, width: int, height: int, *, model: str | None = None
) -> bytes:
    """A ``width`` x ``height`` PNG that depends only on (prompt, seed).

    A tiny random tile seeded by a hash of prompt and seed is scaled up, so rendering stays
    cheap at 1024x1024. The PNG carries a ``parameters`` text chunk with SwarmUI's metadata
    JSON ``{"sui_image_params": {prompt, seed, width, height, model}}``.

    >>> render_png("a cat", 1, 64, 32) == render_png("a cat", 1, 64, 32)
    True
    >>> render_png("a cat", 1, 64, 32) == render_png("a cat", 2, 64, 32)
    False
    """
    image = _pattern(prompt, seed).resize((width, height), Image.Resampling.NEAREST)
    info = PngInfo()
    metadata = {"sui_image_params": image_params(prompt, seed, width, height, model)}
    info.add_text("parameters", json.dumps(metadata))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1, pnginfo=info)
    return buffer.getvalue()


def render_jpeg_preview(prompt: str, seed: int, step: int) -> bytes:
    """A 32x32 JPEG preview of the image in progress (for ``gen_progress.preview``)."""
    image = _pattern(prompt, seed).resize((32, 32), Image.Resampling.BILINEAR)
    if step:
        image = image.rotate(step * 7)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=40)
    return buffer.getvalue()

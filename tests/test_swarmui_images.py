"""Decoding and checking returned images (no server needed)."""

from __future__ import annotations

import base64
import json

import pytest

from orchestrator.emulator.swarm import render_png
from orchestrator.errors import ImageDecodeError
from orchestrator.swarmui import decode_data_url, decode_image


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def test_a_data_url_splits_into_mime_and_bytes() -> None:
    assert decode_data_url(data_url(b"abc", "image/webp")) == ("image/webp", b"abc")


@pytest.mark.parametrize(
    "text", ["View/local/raw/x.png", "data:image/png,abc", "data:image/png;base64,@@@"]
)
def test_anything_but_a_valid_base64_data_url_is_a_decode_error(text: str) -> None:
    with pytest.raises(ImageDecodeError):
        decode_data_url(text)


def test_an_image_reports_its_size_and_png_metadata_seed() -> None:
    png = render_png("a dog", 41, 80, 64, model="m.safetensors")
    image = decode_image(png, "image/png", batch_index=2, seed=None)
    assert (image.width, image.height, image.batch_index, image.seed) == (80, 64, 2, 41)
    assert image.metadata == {
        "sui_image_params": {
            "prompt": "a dog", "seed": 41, "width": 80, "height": 64, "model": "m.safetensors"
        }
    }  # fmt: skip


def test_metadata_given_by_the_caller_wins_over_the_png_text() -> None:
    png = render_png("a dog", 41, 64, 64)
    meta = {"sui_image_params": {"seed": 99}}
    image = decode_image(png, "image/png", batch_index=0, seed=5, metadata=meta)
    assert image.seed == 99 and image.metadata == meta


def test_the_client_seed_is_used_when_there_is_no_metadata_seed() -> None:
    png = render_png("a dog", 41, 64, 64)
    image = decode_image(png, "image/png", batch_index=0, seed=5, metadata={"x": 1})
    assert image.seed == 5


def test_bytes_that_are_not_an_image_are_a_decode_error() -> None:
    with pytest.raises(ImageDecodeError, match="not a valid image"):
        decode_image(b"hello world", "image/png", batch_index=0, seed=None)


def test_a_truncated_png_is_a_decode_error() -> None:
    png = render_png("a dog", 41, 64, 64)
    with pytest.raises(ImageDecodeError):
        decode_image(png[: len(png) // 2], "image/png", batch_index=0, seed=None)


def test_a_wrong_size_names_both_sizes() -> None:
    png = render_png("a dog", 1, 64, 96)
    with pytest.raises(ImageDecodeError, match=r"64x96, expected 128x128"):
        decode_image(png, "image/png", batch_index=0, seed=1, expected_size=(128, 128))


def test_png_parameters_that_are_not_json_are_kept_as_text() -> None:
    import io

    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("parameters", "a cat, Steps: 20")
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG", pnginfo=info)
    image = decode_image(buffer.getvalue(), "image/png", batch_index=0, seed=3)
    assert image.metadata == {"parameters": "a cat, Steps: 20"} and image.seed == 3
    assert json.dumps(image.metadata)

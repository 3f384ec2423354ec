"""Serializing caller parameters into a SwarmUI request body (specs/swarmui-api.md §4)."""

from __future__ import annotations

import base64
import doctest
import io

import pytest
from PIL import Image

import orchestrator.swarmui
from orchestrator.swarmui import _params, clean_param_id, serialize_params


@pytest.mark.parametrize(
    ("key", "cleaned"),
    [
        ("CFG Scale", "cfgscale"),
        ("cfg_scale", "cfgscale"),
        ("CLIP Stop At Layer", "clipstopatlayer"),
        ("T5-XXL Model", "txxlmodel"),
        ("IP2P CFG 2", "ippcfg"),
        ("[Internal] Backend Type", "internalbackendtype"),
        ("  Negative_Prompt ", "negativeprompt"),
    ],
)
def test_clean_param_id_lowercases_and_keeps_only_a_to_z(key: str, cleaned: str) -> None:
    assert clean_param_id(key) == cleaned


def test_native_values_pass_through_under_the_keys_as_given() -> None:
    body = serialize_params(
        {"Prompt": "a cat", "steps": 20, "CFG_Scale": 6.5, "donotsave": False, "custom_x": "y"}
    )
    assert body == {"Prompt": "a cat", "steps": 20, "CFG_Scale": 6.5, "donotsave": False,
                    "custom_x": "y"}  # fmt: skip
    assert type(body["steps"]) is int and type(body["donotsave"]) is bool


def test_none_values_are_left_out() -> None:
    assert serialize_params({"prompt": "x", "negativeprompt": None}) == {"prompt": "x"}


def test_route_arguments_are_left_to_generate() -> None:
    assert serialize_params({"images": 4, "session_id": "abc", "seed": 1}) == {"seed": 1}


def test_bytes_become_raw_base64_without_a_data_prefix() -> None:
    body = serialize_params({"initimage": b"\x89PNG-data", "maskimage": bytearray(b"mask")})
    assert body["initimage"] == base64.b64encode(b"\x89PNG-data").decode()
    assert body["maskimage"] == "bWFzaw=="
    assert not body["initimage"].startswith("data:")


def test_a_pillow_image_becomes_base64_png() -> None:
    image = Image.new("RGB", (3, 2), "red")
    encoded = serialize_params({"initimage": image})["initimage"]
    with Image.open(io.BytesIO(base64.b64decode(encoded))) as decoded:
        assert decoded.format == "PNG" and decoded.size == (3, 2)


def test_a_list_of_images_is_joined_with_pipes() -> None:
    body = serialize_params({"promptimages": [b"one", Image.new("L", (1, 1))]})
    first, second = body["promptimages"].split("|")
    assert base64.b64decode(first) == b"one"
    assert base64.b64decode(second).startswith(b"\x89PNG")


def test_other_lists_become_comma_joined_strings() -> None:
    body = serialize_params({"loras": ["detail", "style"], "loraweights": (0.8, 1), "x": []})
    assert body == {"loras": "detail,style", "loraweights": "0.8,1", "x": ""}


def test_presets_stay_a_list() -> None:
    assert serialize_params({"presets": ("fast", "hq")}) == {"presets": ["fast", "hq"]}


def test_mappings_are_sent_as_json_objects() -> None:
    meta = {"user": "ann", "tags": ["a"]}
    assert serialize_params({"extra_metadata": meta}) == {"extra_metadata": meta}


@pytest.mark.parametrize(
    "key", ["model", "Model", "refinermodel", "refiner_model", "vae", "RefinerVAE",
            "controlnetmodel", "videomodel", "T5-XXL Model"],
)  # fmt: skip
def test_model_params_lose_the_safetensors_extension(key: str) -> None:
    body = serialize_params({key: "Folder/thing.safetensors"})
    assert body == {key: "Folder/thing"}


def test_non_model_params_keep_a_safetensors_suffix() -> None:
    body = serialize_params({"prompt": "x.safetensors", "loras": ["a.safetensors"]})
    assert body == {"prompt": "x.safetensors", "loras": "a.safetensors"}


def test_other_objects_are_sent_as_text() -> None:
    class Sampler:
        def __str__(self) -> str:
            return "euler"

    assert serialize_params({"sampler": Sampler()}) == {"sampler": "euler"}


def test_the_docstring_examples_hold() -> None:
    failures, tried = doctest.testmod(_params)
    assert tried >= 5 and failures == 0


def test_the_public_api_is_exactly_the_intended_names() -> None:
    assert set(orchestrator.swarmui.__all__) == {
        "BackendInfo", "GeneratedImage", "GenerationEvent", "ImageReady", "ModelListing",
        "RequestSent", "Progress", "SessionInfo", "StatusUpdate", "SwarmUIClient", "clean_param_id",
        "decode_data_url", "decode_image", "serialize_params", "T2I_LIMITS", "ParamLimit",
        "check_params",
    }  # fmt: skip
    for name in orchestrator.swarmui.__all__:
        assert getattr(orchestrator.swarmui, name).__doc__

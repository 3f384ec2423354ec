"""SwarmUI's parameter limits are checked before any RunPod call, with SwarmUI's own texts
(``T2IParamTypes.ValidateParam``): a typo costs no GPU-second, in the library and the service."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from service_support import served
from support import world

from orchestrator.emulator import EndpointConfig
from orchestrator.errors import InvalidParameterError
from orchestrator.swarmui import T2I_LIMITS, check_params, clean_param_id

V2 = EndpointConfig(protocol="v2", cold_start_s=30.0)


def refusal(params: dict[str, Any], *, images: int | None = None) -> str:
    with pytest.raises(InvalidParameterError) as refused:
        check_params(params, images=images)
    assert not refused.value.retryable and refused.value.phase == "admission"
    return str(refused.value)


@pytest.mark.parametrize(
    ("params", "text"),
    [
        (
            {"steps": 900},
            "Invalid value for parameter Steps: Invalid integer value for param Steps - '900' - "
            "must be between 0 and 500",
        ),
        (
            {"width": 100000},
            "Invalid value for parameter Width: Invalid integer value for param Width - "
            "'100000' - must be between 64 and 16384",
        ),
        (
            {"width": "NaN"},
            "Invalid value for parameter Width: Invalid integer value for param Width - 'NaN' - "
            "must be a valid integer (eg '0', '3', '-5', etc)",
        ),
        (
            {"cfg_scale": 101.5},
            "Invalid value for parameter CFG Scale: Invalid decimal value for param CFG Scale - "
            "'101.5' - must be between 0 and 100",
        ),
        (
            {"CFGScale": "seven"},
            "Invalid value for parameter CFG Scale: Invalid decimal value for param CFG Scale - "
            "'seven' - must be a valid decimal (eg '0.0', '3.5', '-5.2', etc)",
        ),
        (
            {"seed": -2},
            "Invalid value for parameter Seed: Invalid integer value for param Seed - '-2' - "
            "must be between -1 and 9.223372036854776E+18",
        ),
        (
            {"refinerupscale": 0.1},
            "Invalid value for parameter Refiner Upscale: Invalid decimal value for param "
            "Refiner Upscale - '0.1' - must be between 0.25 and 8",
        ),
        (
            {"batch_size": 101},
            "Invalid value for parameter Batch Size: Invalid integer value for param Batch Size "
            "- '101' - must be between 1 and 100",
        ),
        (
            {"rawresolution": "32x4096"},
            "Invalid value for parameter Raw Resolution: Invalid resolution: 32x4096 (must be "
            "between 64x64 and 16384x16384)",
        ),
    ],
)
def test_out_of_range_numbers_are_refused_in_swarmuis_words(
    params: dict[str, Any], text: str
) -> None:
    assert refusal(params) == text


@pytest.mark.parametrize(
    "value",
    [20.5, True, "20 steps", [20, 30], {"n": 20}, 2**63, "", "0x14"],
    ids=["fraction", "bool", "words", "list", "object", "past-long", "empty", "hex"],
)
def test_what_swarmui_cannot_parse_as_an_integer_is_refused(value: object) -> None:
    assert "must be a valid integer" in refusal({"steps": value})


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        (math.nan, "must be a valid decimal"),  # stricter than SwarmUI: a NaN CFG renders noise
        ("NaN", "must be a valid decimal"),
        (math.inf, "must be between 0 and 100"),
        ("-Infinity", "must be between 0 and 100"),
        ("1e300", "must be between 0 and 100"),
    ],
)
def test_nan_and_infinities_never_reach_a_worker(value: object, rule: str) -> None:
    assert rule in refusal({"cfgscale": value})


@pytest.mark.parametrize(
    "params",
    [
        {"steps": 20.0},  # SwarmUI reads the JSON 20.0 as "20"
        {"steps": " 20 ", "seed": "-1", "cfgscale": "7.5"},
        {"seed": 2**63 - 1, "variationseed": 2**32 - 1, "clipstopatlayer": -24},
        {"cfgscale": "1,5"},  # C#'s double.TryParse takes thousands separators: 15
        {"refinerupscale": 1},  # IgnoreIf "1": removed, never checked
        {"rawresolution": "1344x768"},
        {"prompt": "a cat", "model": "sd_xl_base_1.0", "sampler": "euler", "seed": None},
        {"no_such_param": 10**9, "widthish": -5, "extra_metadata": {"steps": 900}},
    ],
)
def test_values_swarmui_takes_and_unknown_parameters_pass(params: dict[str, Any]) -> None:
    check_params(params)


def test_the_image_count_is_checked_as_swarmuis_images_parameter() -> None:
    check_params({}, images=10000)
    assert "must be between 1 and 10000" in refusal({}, images=0)
    assert "must be between 1 and 10000" in refusal({"images": 10001})


def test_old_parameter_ids_are_checked_under_their_new_name() -> None:
    assert "Video FPS" in refusal({"text_video_fps": 5000})


def test_the_table_is_swarmuis_core_registry() -> None:
    assert len(T2I_LIMITS) == 77
    for key, limit in T2I_LIMITS.items():
        assert key == clean_param_id(limit.name) and limit.minimum <= limit.maximum, key
    core = {key: (T2I_LIMITS[key].minimum, T2I_LIMITS[key].maximum) for key in SPEC_RANGES}
    assert core == SPEC_RANGES


SPEC_RANGES = {  # specs/swarmui-api.md §4.3
    "images": (1, 10000),
    "seed": (-1, 2**63 - 1),
    "steps": (0, 500),
    "cfgscale": (0, 100),
    "width": (64, 16384),
    "height": (64, 16384),
    "sidelength": (64, 16384),
    "clipstopatlayer": (-24, -1),
    "initimagecreativity": (0, 1),
    "batchsize": (1, 100),
    "variationseed": (-1, 2**32 - 1),
    "variationseedstrength": (0, 1),
    "refinercontrolpercentage": (0, 1),
    "refinerupscale": (0.25, 8),
    "refinersteps": (1, 200),
    "refinercfgscale": (0, 100),
    "controlnetstrength": (0, 2),
    "fluxguidancescale": (0, 100),
}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("params", "images"),
    [({"width": 100000}, 1), ({"steps": 800}, 1), ({"width": "NaN"}, 1), ({}, 0)],
)
async def test_the_library_refuses_before_any_runpod_call(
    params: dict[str, Any], images: int
) -> None:
    async with world(V2, DailyGpuSecondsPerUser=100) as w:
        with pytest.raises(InvalidParameterError):
            await w.orch.generate({"prompt": "x", **params}, images=images, user="ann")
        assert w.endpoint.api_calls == []
        assert w.endpoint.jobs == {} and w.endpoint.ledger == []


@pytest.mark.anyio
async def test_the_service_answers_swarmuis_error_and_calls_no_runpod_route(
    tmp_path: Path,
) -> None:
    async with served(tmp_path) as served_world:
        client = served_world.client("ann")
        await client.new_session()
        status, answer = await client.call(
            "GenerateText2Image", {"images": 1, "prompt": "x", "steps": 800}
        )
        assert status == 200
        assert answer == {
            "error": "Invalid value for parameter Steps: Invalid integer value for param Steps "
            "- '800' - must be between 0 and 500"
        }
        for images in (0, 10001):
            status, answer = await client.call("GenerateText2Image", {"images": images})
            assert status == 200 and "must be between 1 and 10000" in answer["error"]
        status, answer = await client.call("GenerateText2Image", {"images": 2**31})
        assert answer["error"].startswith("Invalid value '2147483648' for parameter 'images'")
        messages, _ = await client.generate_ws({"images": 1, "width": 100000})
        assert {"error": next(m["error"] for m in messages if "error" in m)} == {
            "error": "Invalid value for parameter Width: Invalid integer value for param Width "
            "- '100000' - must be between 64 and 16384"
        }
        assert served_world.endpoint.api_calls == []

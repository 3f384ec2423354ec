"""Model discovery, the catalog's ListModels rules and the per-endpoint registry.

Discovery runs against the emulator (a v2 endpoint, real HTTP, virtual time) and must ask the
way SwarmSwarmBackend does (specs/swarmui-api.md §6); the catalog answers ListModels itself with
SwarmUI's rules (§5.1); the registry keeps catalogs across restarts (§8.4).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import stat
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from pg_support import StoreSpot
from support import ENDPOINT, World, idled_out, world

from orchestrator.emulator import EmulatedEndpoint, EndpointConfig
from orchestrator.emulator.swarm import DEFAULT_MODELS, FakeSwarmUI, ModelSpec, SwarmConfig
from orchestrator.errors import TransportError
from orchestrator.models import (
    SUBTYPES,
    ModelCatalog,
    ModelRegistry,
    discover_models,
    refresh_models,
)
from orchestrator.swarmui import SwarmUIClient

pytestmark = pytest.mark.anyio

NOON = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
MODEL_KEYS = {
    "name", "title", "author", "description", "preview_image", "loaded", "architecture",
    "class", "compat_class", "resolution", "standard_width", "standard_height", "license",
    "date", "prediction_type", "usage_hint", "trigger_phrase", "merged_from", "tags",
    "is_supported_model_format", "is_negative_embedding", "lora_default_weight",
    "lora_default_confinement", "local", "time_created", "time_modified", "hash",
    "hash_sha256", "special_format",
}  # fmt: skip
EVERY_SUBTYPE = (
    *DEFAULT_MODELS,
    ModelSpec("bad_hands.safetensors", subtype="Embedding", architecture="sdxl/embedding"),
    ModelSpec("canny/control_canny.safetensors", subtype="ControlNet", architecture="cn"),
    ModelSpec("clip_l.safetensors", subtype="Clip", architecture="clip-l"),
    ModelSpec("clip_vision_g.safetensors", subtype="ClipVision", architecture="clip-g"),
)
SDXL = "OfficialStableDiffusion/sd_xl_base_1.0.safetensors"
TURBO = "XL/Turbo/sdxl_turbo.safetensors"


def noon() -> dt.datetime:
    return NOON


def v2(models: tuple[ModelSpec, ...] = EVERY_SUBTYPE) -> EndpointConfig:
    return EndpointConfig(
        protocol="v2", cold_start_s=60.0, idle_timeout_s=5.0, swarm=SwarmConfig(models=models)
    )


def leases(endpoint: EmulatedEndpoint) -> int:
    return sum(job.input.get("action") == "lease" for job in endpoint.jobs.values())


@contextmanager
def recorded_calls(
    swarm: SwarmUIClient, monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Every API call ``swarm`` makes, as (route, payload)."""
    calls: list[tuple[str, dict[str, Any]]] = []
    original = swarm.call

    async def recording(route: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        calls.append((route, dict(payload)))
        return await original(route, payload)

    monkeypatch.setattr(swarm, "call", recording)
    yield calls


async def discover(w: World, **kwargs: Any) -> ModelCatalog:
    async with w.orch.hold_worker() as swarm:
        return await discover_models(swarm, ENDPOINT, clock=noon, **kwargs)


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[ModelRegistry]:
    opened = await ModelRegistry.open(tmp_path / "models.sqlite3")
    yield opened
    await opened.close()


@pytest.fixture
async def stored(spot: StoreSpot) -> AsyncIterator[ModelRegistry]:
    """The registry in the test's state store (SQLite, then PostgreSQL)."""
    async with spot.open() as store:
        yield await ModelRegistry.open(store)


def model(name: str, **keys: Any) -> dict[str, Any]:
    return {"name": name, "title": name.rsplit("/", 1)[-1].split(".")[0], **keys}


def catalog_of(*models: dict[str, Any], subtype: str = "Stable-Diffusion") -> ModelCatalog:
    return ModelCatalog("ep", {subtype: models}, "2026-01-01T00:00:00Z")


def names(answer: dict[str, Any]) -> list[str]:
    return [file["name"] for file in answer["files"]]


# --- discovery against the emulator -------------------------------------------------------------


async def test_discovery_asks_every_subtype_as_swarmswarmbackend_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with world(v2()) as w, w.orch.hold_worker() as swarm:
        with recorded_calls(swarm, monkeypatch) as calls:
            catalog = await discover_models(swarm, ENDPOINT, clock=noon)

    asked = [payload for route, payload in calls if route == "ListModels"]
    assert sorted(p["subtype"] for p in asked) == sorted(SUBTYPES)
    for payload in asked:
        assert payload == {
            "path": "",
            "depth": 999,
            "subtype": payload["subtype"],
            "allowRemote": False,
            "sortBy": "Name",
            "sortReverse": False,
            "dataImages": True,
        }
    assert catalog.endpoint_id == ENDPOINT
    assert catalog.refreshed_at == "2026-03-01T12:00:00Z"
    assert catalog.failed_subtypes == ()
    assert catalog.count() == len(EVERY_SUBTYPE)
    assert TURBO in catalog.names()  # three folders deep: found because depth > 1 was sent
    for subtype in SUBTYPES:
        expected = sorted(m.name for m in EVERY_SUBTYPE if m.subtype == subtype)
        assert list(catalog.names(subtype)) == expected


async def test_discovery_keeps_whole_model_objects_as_remote_copies() -> None:
    async with world(v2()) as w:
        catalog = await discover(w)

    sdxl = next(m for m in catalog.models["Stable-Diffusion"] if m["name"] == SDXL)
    assert set(sdxl) == MODEL_KEYS
    assert sdxl["title"] == "Stable Diffusion XL 1.0 Base"
    assert sdxl["architecture"] == "stable-diffusion-xl-v1-base"
    assert sdxl["preview_image"].startswith("data:image/jpeg;base64,")
    assert (sdxl["standard_width"], sdxl["standard_height"]) == (1024, 1024)
    for objs in catalog.models.values():
        for obj in objs:
            assert obj["local"] is False
            assert isinstance(obj["loaded"], bool)
            assert isinstance(obj["standard_width"], int)
            assert isinstance(obj["standard_height"], int)


async def test_a_failing_subtype_is_logged_and_recorded_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with world(v2()) as w:
        w.endpoint.swarm_faults.truncated_json(times=1, route="ListModels")
        with caplog.at_level(logging.ERROR, logger="swarmpod.models"):
            catalog = await discover(w)

    (failed,) = catalog.failed_subtypes
    assert catalog.names(failed) == ()
    others = [m for m in EVERY_SUBTYPE if m.subtype != failed]
    assert catalog.count() == len(others)
    assert f"failed to get {failed} models" in caplog.text


async def test_an_unreachable_worker_raises_transport_error_itself() -> None:
    fake = FakeSwarmUI(SwarmConfig())
    url = await fake.start()
    await fake.stop()
    async with aiohttp.ClientSession() as http:
        with pytest.raises(TransportError):
            await discover_models(SwarmUIClient(http, url), "ep")


# --- refresh: wake, give back, persist ----------------------------------------------------------


async def test_refresh_wakes_one_worker_gives_it_back_and_persists(tmp_path: Path) -> None:
    path = tmp_path / "state" / "models.sqlite3"
    async with world(v2(), IdleTimeoutSec=30) as w:
        registry = await ModelRegistry.open(path)
        catalog = await refresh_models(w.orch, registry, clock=noon)
        await registry.close()

        assert catalog.count() == len(EVERY_SUBTYPE)
        assert len(w.endpoint.workers) == 1 and leases(w.endpoint) == 1
        assert w.orch.status().busy == 0
        assert len(w.endpoint.running_workers()) == 1  # warm for the idle window
        await anyio.sleep(31)
        assert await idled_out(w.endpoint) == []

        jobs = len(w.endpoint.jobs)
        restarted = await ModelRegistry.open(path)  # a restart reads it, waking nothing
        assert await restarted.load(ENDPOINT) == catalog
        await restarted.close()
        await anyio.sleep(5)
        assert len(w.endpoint.jobs) == jobs and w.endpoint.running_workers() == []
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


async def test_refresh_reuses_a_warm_worker() -> None:
    async with world(v2(), IdleTimeoutSec=30) as w:
        registry = await ModelRegistry.open(":memory:")
        await refresh_models(w.orch, registry, clock=noon)
        await anyio.sleep(10)
        await refresh_models(w.orch, registry, clock=noon)
        assert len(w.endpoint.workers) == 1 and leases(w.endpoint) == 1
        await registry.close()


async def test_an_empty_discovery_never_overwrites_a_stored_catalog(
    registry: ModelRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    async with world(v2()) as w:
        first = await refresh_models(w.orch, registry, clock=noon)
        w.endpoint.swarm_faults.truncated_json(times=len(SUBTYPES), route="ListModels")
        with caplog.at_level(logging.WARNING, logger="swarmpod.models"):
            second = await refresh_models(w.orch, registry)

    assert second == first
    assert await registry.load(ENDPOINT) == first
    assert "found no models" in caplog.text


async def test_a_failed_subtype_keeps_its_earlier_models(registry: ModelRegistry) -> None:
    async with world(v2()) as w:
        first = await refresh_models(w.orch, registry, clock=noon)
        w.endpoint.swarm_faults.truncated_json(times=1, route="ListModels")
        second = await refresh_models(w.orch, registry, clock=lambda: NOON.replace(hour=13))

    (failed,) = second.failed_subtypes
    assert second.refreshed_at == "2026-03-01T13:00:00Z"
    assert second.names(failed) == first.names(failed)
    assert second.count() == first.count()
    assert await registry.load(ENDPOINT) == second


# --- the registry on its own --------------------------------------------------------------------


async def test_an_empty_catalog_is_stored_when_nothing_was(stored: ModelRegistry) -> None:
    empty = ModelCatalog("ep", {s: () for s in SUBTYPES}, "t", failed_subtypes=SUBTYPES)
    assert await stored.save(empty) == empty
    assert await stored.load("ep") == empty
    assert await stored.load("other") is None


async def test_a_non_empty_catalog_replaces_the_stored_one(stored: ModelRegistry) -> None:
    await stored.save(catalog_of(model("a.safetensors")))
    newer = catalog_of(model("b.safetensors"))
    assert await stored.save(newer) == newer
    assert await stored.load("ep") == newer


async def test_an_empty_catalog_never_replaces_a_stored_one_whichever_replica_saves(
    spot: StoreSpot,
) -> None:
    async with spot.open() as first_store, spot.open() as second_store:
        first = await ModelRegistry.open(first_store)
        second = await ModelRegistry.open(second_store)
        full = catalog_of(model("a.safetensors"))
        empty = ModelCatalog("ep", {s: () for s in SUBTYPES}, "t", failed_subtypes=SUBTYPES)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(first.save, full)
            tasks.start_soon(second.save, empty)
        assert await first.load("ep") == await second.load("ep") == full


async def test_an_unreadable_stored_catalog_loads_as_none(
    stored: ModelRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    await stored.save(catalog_of(model("a.safetensors")))
    await stored.store.execute("UPDATE model_catalogs SET catalog = '[]'")
    with caplog.at_level(logging.WARNING, logger="swarmpod.models"):
        assert await stored.load("ep") is None
    assert "unreadable" in caplog.text


def test_json_round_trip_and_refusal() -> None:
    catalog = catalog_of(model("a.safetensors", loaded=True), model("Sub/b.safetensors"))
    assert ModelCatalog.from_json(catalog.to_json()) == catalog
    bad_data: list[Any] = [[], {"endpoint_id": 1}, {"endpoint_id": "ep", "models": {"VAE": "x"}}]
    for bad in bad_data:
        with pytest.raises(ValueError, match="model catalog"):
            ModelCatalog.from_json(bad)


# --- model objects ------------------------------------------------------------------------------


def test_model_objects_are_copied_and_completed() -> None:
    raw = {"name": "a.safetensors", "resolution": "768x512", "local": True}
    catalog = catalog_of(
        raw,
        {"name": "b.safetensors", "standard_width": "640", "standard_height": 448},
        {"name": "c.safetensors", "resolution": "unknown", "loaded": 1},
        {"title": "no name"},
    )
    a, b, c = catalog.models["Stable-Diffusion"]
    assert raw["local"] is True and "loaded" not in raw  # the caller's object is untouched
    assert (a["local"], a["loaded"], a["standard_width"], a["standard_height"]) == (
        False, False, 768, 512,
    )  # fmt: skip
    assert (b["standard_width"], b["standard_height"]) == (640, 448)
    assert (c["loaded"], c["standard_width"], c["standard_height"]) == (True, 0, 0)
    assert catalog.count() == 3


def test_has_accepts_names_with_or_without_the_extension() -> None:
    catalog = ModelCatalog(
        "ep",
        {"Stable-Diffusion": (model(SDXL), model("plain.ckpt")), "LoRA": (model("ink"),)},
        None,
    )
    assert catalog.has(SDXL) and catalog.has(SDXL.removesuffix(".safetensors"))
    assert catalog.has("plain.ckpt") and not catalog.has("plain")
    assert catalog.has("ink", "LoRA") and catalog.has("ink.safetensors", "LoRA")
    assert not catalog.has("sd_xl_base_1.0")  # exact relative paths, no fuzzy match
    assert not catalog.has("ink") and not catalog.has(SDXL, "VAE")
    assert not catalog.has(SDXL, "Nonsense")
    assert catalog.names("Nonsense") == ()


# --- ListModels rules ---------------------------------------------------------------------------

TREE = catalog_of(
    model("root.safetensors", title="Zeta", time_created=30, time_modified=1),
    model("Apple.safetensors", title="beta", time_created=10, time_modified=3),
    model("XL/base.safetensors", title="alpha", time_created=20, time_modified=2),
    model("XL/Turbo/turbo.safetensors", title="Alpha"),
    model("xl2/deep/er/most.safetensors", title="gamma", time_created=5, time_modified=5),
)


def test_depth_one_lists_root_files_and_first_level_folders() -> None:
    answer = TREE.listing()
    assert answer["folders"] == ["XL", "xl2"]
    assert names(answer) == ["Apple.safetensors", "root.safetensors"]


def test_deeper_listings_add_levels_and_folders() -> None:
    assert TREE.listing(depth=2)["folders"] == ["XL", "XL/Turbo", "xl2", "xl2/deep"]
    assert names(TREE.listing(depth=2)) == [
        "Apple.safetensors", "root.safetensors", "XL/base.safetensors",
    ]  # fmt: skip
    assert len(TREE.listing(depth=4)["files"]) == 5


def test_depth_is_clamped_to_1_through_20() -> None:
    deep = "/".join(f"d{i}" for i in range(25)) + "/m.safetensors"
    catalog = catalog_of(model(deep), model("top.safetensors"))
    assert catalog.listing(depth=0) == catalog.listing(depth=1)
    assert catalog.listing(depth=-5) == catalog.listing(depth=1)
    assert names(catalog.listing(depth=999)) == ["top.safetensors"]
    assert len(catalog.listing(depth=999)["folders"]) == 20


def test_path_restricts_to_a_folder_and_folders_are_relative_to_it() -> None:
    answer = TREE.listing(path="XL", depth=2)
    assert answer["folders"] == ["Turbo"]
    assert names(answer) == ["XL/base.safetensors", "XL/Turbo/turbo.safetensors"]
    assert names(TREE.listing(path="XL/Turbo")) == ["XL/Turbo/turbo.safetensors"]
    assert TREE.listing(path="X") == {"folders": [], "files": []}  # a prefix is a folder


@pytest.mark.parametrize("path", ["XL", "XL/", "/XL", "\\XL", "//XL//", "XL\\\\"])
def test_paths_are_normalized(path: str) -> None:
    assert TREE.listing(path=path, depth=3) == TREE.listing(path="XL", depth=3)


@pytest.mark.parametrize("path", ["", "/", "\\", "//"])
def test_empty_paths_mean_the_root(path: str) -> None:
    assert TREE.listing(path=path) == TREE.listing()


@pytest.mark.parametrize(
    ("sort_by", "expected"),
    [
        ("Name", ["Apple", "root", "base", "turbo", "most"]),
        (" name ", ["Apple", "root", "base", "turbo", "most"]),
        ("Title", ["base", "turbo", "Apple", "most", "root"]),
        ("DATECREATED", ["turbo", "root", "base", "Apple", "most"]),
        ("DateModified", ["turbo", "most", "Apple", "base", "root"]),
    ],
)
def test_sort_modes(sort_by: str, expected: list[str]) -> None:
    files = names(TREE.listing(depth=20, sort_by=sort_by))
    stems = [name.rsplit("/", 1)[-1].removesuffix(".safetensors") for name in files]
    assert stems == expected
    reverse = names(TREE.listing(depth=20, sort_by=sort_by, sort_reverse=True))
    assert reverse == files[::-1]


def test_invalid_sort_mode_and_subtype_use_swarmuis_texts() -> None:
    with pytest.raises(ValueError, match=r"^Invalid sort mode 'Size'\.$"):
        TREE.listing(sort_by="Size")
    with pytest.raises(ValueError, match=r"^Invalid sub-type\.$"):
        TREE.listing("stable-diffusion")  # case-sensitive
    with pytest.raises(ValueError, match="sort mode"):  # the sort mode is checked first
        TREE.listing("Nope", sort_by="Size")
    assert TREE.listing("Wildcards") == {"folders": [], "files": []}
    assert TREE.listing("VAE") == {"folders": [], "files": []}


def test_listed_files_are_full_copies_and_previews_can_be_urls() -> None:
    preview = "data:image/jpeg;base64,AAAA"
    catalog = catalog_of(model("Sub/x.safetensors", preview_image=preview), subtype="LoRA")
    (listed,) = catalog.listing("LoRA", depth=2)["files"]
    assert listed == catalog.models["LoRA"][0]
    listed["title"] = "changed"
    assert catalog.models["LoRA"][0]["title"] == "x"
    (linked,) = catalog.listing("LoRA", depth=2, data_images=False)["files"]
    assert linked["preview_image"] == "/ViewSpecial/LoRA/Sub/x.safetensors"

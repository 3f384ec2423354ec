"""The SwarmUI client against a real FakeSwarmUI on 127.0.0.1 (no mocks), in virtual time."""

from __future__ import annotations

import contextlib
import io
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Literal

import aiohttp
import anyio
import pytest
from PIL import Image

from orchestrator.emulator.swarm import FakeSwarmUI, SwarmConfig, SwarmFaults
from orchestrator.errors import (
    GenerationFailedError,
    ImageDecodeError,
    NoImagesError,
    SwarmUIError,
    SwarmUISessionError,
    TransportError,
)
from orchestrator.secrets import Secret
from orchestrator.swarmui import (
    GenerationEvent,
    ImageReady,
    Progress,
    RequestSent,
    StatusUpdate,
    SwarmUIClient,
)

pytestmark = pytest.mark.anyio

SDXL = "OfficialStableDiffusion/sd_xl_base_1.0.safetensors"
TOKEN = "Bearer worker-token-0123456789"
Transport = Literal["ws", "http"]
TRANSPORTS: tuple[Transport, ...] = ("ws", "http")


@dataclass
class Rig:
    """A running fake, an HTTP session and a client for it."""

    fake: FakeSwarmUI
    http: aiohttp.ClientSession
    client: SwarmUIClient


@contextlib.asynccontextmanager
async def rig(
    config: SwarmConfig | None = None,
    *,
    authorization: Secret | None = None,
    session_timeout: aiohttp.ClientTimeout | None = None,
) -> AsyncIterator[Rig]:
    """Start a fake SwarmUI and a client for it; stop both afterwards."""
    fake = FakeSwarmUI(config or SwarmConfig(), faults=SwarmFaults(), worker_id="w1")
    url = await fake.start()
    try:
        async with aiohttp.ClientSession(timeout=session_timeout) as http:
            client = SwarmUIClient(http, url, authorization=authorization, worker_id="w1")
            yield Rig(fake, http, client)
    finally:
        await fake.stop()


async def eventually(predicate: Callable[[], bool], within: float = 5.0) -> None:
    """Wait (in loop time) until ``predicate()`` holds; fail after ``within`` seconds."""
    for _ in range(int(within / 0.05)):
        if predicate():
            return
        await anyio.sleep(0.05)
    raise AssertionError("condition not reached in time")


def params(**extra: object) -> dict[str, object]:
    """Small, fast SD parameters."""
    return {"prompt": "a cat", "model": SDXL, "width": 64, "height": 80, "steps": 4, **extra}


def png_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        return image.size


async def test_first_call_creates_a_session() -> None:
    async with rig() as r:
        before = r.client.session_id
        status = await r.client.get_current_status()
        after = r.client.session_id
        assert before is None
        assert after is not None and len(after) == 40
        assert status["status"]["live_gens"] == 0


async def test_get_new_session_reports_the_server() -> None:
    async with rig() as r:
        info = await r.client.get_new_session()
        assert info.server_id == r.fake.server_id
        assert info.user_id == "local"
        assert r.client.session_id == info.session_id


async def test_a_handed_out_session_is_used_without_getting_a_new_one() -> None:
    async with rig() as r:
        given = r.fake.create_session()
        client = SwarmUIClient(r.http, r.client.base_url, session_id=given)
        await client.get_current_status()
        assert client.session_id == given


async def test_invalid_session_once_is_renewed_and_the_call_succeeds() -> None:
    async with rig() as r:
        await r.client.get_new_session()
        old = r.client.session_id
        r.fake.invalidate_sessions()
        backends = await r.client.list_backends()
        assert list(backends) == ["0"]
        assert r.client.session_id not in (None, old)


async def test_invalid_session_twice_raises_a_session_error() -> None:
    async with rig() as r:
        await r.client.get_new_session()
        r.fake.faults.invalid_session(times=2)
        with pytest.raises(SwarmUISessionError) as caught:
            await r.client.get_current_status()
        assert caught.value.error_id == "invalid_session_id"
        assert caught.value.worker_id == "w1"


async def test_route_errors_carry_swarmuis_text() -> None:
    async with rig() as r:
        with pytest.raises(SwarmUIError) as caught:
            await r.client.select_model("no_such_model")
        assert caught.value.message == "Model not found."
        assert caught.value.route == "SelectModel"


async def test_select_model_loads_it() -> None:
    async with rig() as r:
        await r.client.select_model("OfficialStableDiffusion/v1-5-pruned-emaonly", backend_id=0)
        backends = await r.client.list_backends()
        assert (
            backends["0"].current_model == "OfficialStableDiffusion/v1-5-pruned-emaonly.safetensors"
        )
        assert backends["0"].status == "running"
        assert backends["0"].raw["type"] == "comfyui_selfstart"


async def test_list_models_keeps_whole_model_objects() -> None:
    async with rig() as r:
        listing = await r.client.list_models(depth=2)
        assert "OfficialStableDiffusion" in listing.folders
        assert SDXL in listing.names
        sdxl = next(model for model in listing.files if model["name"] == SDXL)
        assert sdxl["standard_width"] == 1024
        assert sdxl["local"] is True


async def test_unreachable_server_is_a_retryable_transport_error() -> None:
    async with aiohttp.ClientSession() as http:
        client = SwarmUIClient(http, "http://127.0.0.1:9", request_timeout=2.0)
        with pytest.raises(TransportError) as caught:
            await client.get_new_session()
        assert caught.value.retryable is True


@pytest.mark.parametrize("transport", ["ws", "http"])
async def test_generates_two_pngs_of_the_requested_size_with_consecutive_seeds(
    transport: Transport,
) -> None:
    async with rig() as r:
        images = await r.client.generate(
            params(seed=1234),
            images=2,
            transport=transport,
            expected_size=(64, 80),
        )
        assert [image.batch_index for image in images] == [0, 1]
        assert [image.seed for image in images] == [1234, 1235]
        for image in images:
            assert image.mime == "image/png"
            assert png_size(image.data) == (64, 80)
            assert (image.width, image.height) == (64, 80)
            assert image.metadata is not None
            assert image.metadata["sui_image_params"]["seed"] == image.seed
        assert images[0].data != images[1].data


@pytest.mark.parametrize("transport", ["ws", "http"])
async def test_a_random_seed_is_locked_client_side(transport: Transport) -> None:
    async with rig() as r:
        client = SwarmUIClient(r.http, r.client.base_url, rng=random.Random(7))
        expected = random.Random(7).randint(0, 2**31 - 2)
        images = await client.generate(params(seed=-1), images=2, transport=transport)
        assert [image.seed for image in images] == [expected, expected + 1]


async def test_noseedincrement_gives_every_image_the_same_seed() -> None:
    async with rig() as r:
        images = await r.client.generate(params(seed=9, noseedincrement=True), images=2)
        assert [image.seed for image in images] == [9, 9]


async def test_ws_progress_events_are_monotone_and_images_are_announced() -> None:
    events: list[GenerationEvent] = []
    async with rig(SwarmConfig(progress_updates=5)) as r:
        await r.client.generate(params(), images=2, on_event=events.append)
    progress = [event for event in events if isinstance(event, Progress)]
    assert len(progress) == 10
    overall = [event.overall for event in progress]
    assert overall == sorted(overall)
    assert overall[-1] == pytest.approx(1.0)
    assert all(0.0 <= event.current <= 1.0 for event in progress)
    assert all(event.preview and event.preview[:2] == b"\xff\xd8" for event in progress)
    assert [event.batch_index for event in events if isinstance(event, ImageReady)] == [0, 1]
    assert events[0] == RequestSent("ws")  # announced once the request is written
    assert isinstance(events[1], StatusUpdate)


async def test_ws_status_updates_report_a_model_load() -> None:
    events: list[GenerationEvent] = []
    async with rig(SwarmConfig(model_load_s=3.0)) as r:
        await r.client.generate(params(), on_event=events.append)
    statuses = [event for event in events if isinstance(event, StatusUpdate)]
    assert any(status.model_loading for status in statuses)
    assert statuses[-1].live_gens == 0


async def test_ws_status_updates_report_a_loading_backend() -> None:
    events: list[GenerationEvent] = []
    async with rig(SwarmConfig(backend_load_s=10.0)) as r:
        start = anyio.current_time()
        await r.client.generate(params(), on_event=events.append)
        assert anyio.current_time() - start >= 10.0
    statuses = [event for event in events if isinstance(event, StatusUpdate)]
    assert any(status.backend_status == "loading" and status.any_loading for status in statuses)


@pytest.mark.parametrize("transport", ["ws", "http"])
async def test_a_generation_error_raises_generation_failed_with_the_text(
    transport: Transport,
) -> None:
    async with rig() as r:
        r.fake.faults.generation_error("CUDA out of memory")
        with pytest.raises(GenerationFailedError) as caught:
            await r.client.generate(params(), transport=transport)
        assert str(caught.value) == "CUDA out of memory"


async def test_a_validation_error_raises_generation_failed_with_swarmuis_text() -> None:
    async with rig() as r:
        with pytest.raises(GenerationFailedError) as caught:
            await r.client.generate(params(steps=900))
        assert caught.value.message == (
            "Invalid value for parameter Steps: Invalid integer value for param Steps - '900' "
            "- must be between 0 and 500"
        )


@pytest.mark.parametrize("transport", ["ws", "http"])
async def test_no_images_raises_no_images_error(transport: Transport) -> None:
    async with rig() as r:
        r.fake.faults.no_images()
        with pytest.raises(NoImagesError):
            await r.client.generate(params(), transport=transport)


@pytest.mark.parametrize("transport", ["ws", "http"])
async def test_bad_base64_raises_image_decode_error(transport: Transport) -> None:
    async with rig() as r:
        r.fake.faults.bad_base64()
        with pytest.raises(ImageDecodeError, match="base64"):
            await r.client.generate(params(), transport=transport)


async def test_an_image_of_the_wrong_size_raises_image_decode_error_naming_both() -> None:
    async with rig() as r:
        with pytest.raises(ImageDecodeError, match="64x80, expected 128x128"):
            await r.client.generate(params(), expected_size=(128, 128))


@pytest.mark.parametrize("transport", ["ws", "http"])
async def test_invalid_session_at_generation_is_renewed_once(transport: Transport) -> None:
    async with rig() as r:
        await r.client.get_new_session()
        r.fake.faults.invalid_session()
        images = await r.client.generate(params(seed=5), transport=transport)
        assert [image.seed for image in images] == [5]
        assert r.fake.generations_started == 1


@pytest.mark.parametrize("transport", ["ws", "http"])
async def test_invalid_session_twice_at_generation_raises_session_error(
    transport: Transport,
) -> None:
    async with rig() as r:
        await r.client.get_new_session()
        r.fake.faults.invalid_session(times=2)
        with pytest.raises(SwarmUISessionError):
            await r.client.generate(params(), transport=transport)
        assert r.fake.generations_started == 0


@pytest.mark.parametrize("transport", ["ws", "http"])
async def test_view_paths_from_a_worker_that_ignored_donotsave_are_downloaded(
    transport: Transport,
) -> None:
    async with rig(authorization=None) as r:
        r.fake.faults.ignore_donotsave()
        images = await r.client.generate(
            params(prompt="a cat / with: odd chars", seed=3),
            transport=transport,
        )
        assert png_size(images[0].data) == (64, 80)
        assert images[0].seed == 3


async def test_authorization_is_sent_on_http_and_the_websocket() -> None:
    config = SwarmConfig(required_authorization=TOKEN)
    async with rig(config, authorization=Secret(TOKEN)) as r:
        r.fake.faults.ignore_donotsave()
        assert len(await r.client.generate(params(), transport="ws")) == 1
        assert len(await r.client.generate(params(), transport="http")) == 1


@pytest.mark.parametrize("transport", ["ws", "http"])
async def test_a_refused_authorization_is_a_clear_error_that_hides_the_token(
    transport: Transport,
) -> None:
    config = SwarmConfig(required_authorization=TOKEN)
    async with rig(config, authorization=Secret("Bearer wrong-secret-value")) as r:
        session_id = r.fake.create_session()
        client = SwarmUIClient(
            r.http,
            r.client.base_url,
            authorization=Secret("Bearer wrong-secret-value"),
            session_id=session_id,
        )
        with pytest.raises(SwarmUIError) as caught:
            await client.generate(params(), transport=transport)
        error = caught.value
        assert error.status == 401
        assert "Authorization" in error.message and "token" in error.message
        for text in (str(error), repr(error), repr(client), str(error.facts())):
            assert "wrong-secret-value" not in text


async def test_a_cancelled_hung_generation_leaves_no_live_generation_on_the_server() -> None:
    async with rig() as r:
        r.fake.faults.hang_generation()
        with anyio.move_on_after(30) as scope:
            await r.client.generate(params())
        assert scope.cancelled_caught
        assert r.fake.generations_started == 1
        await eventually(lambda: r.fake.live_generations == 0)
        assert r.fake.generations_finished == 1


async def test_a_cancelled_http_generation_leaves_no_live_generation_on_the_server() -> None:
    async with rig() as r:
        r.fake.faults.hang_generation()
        with anyio.move_on_after(30):
            await r.client.generate(params(), transport="http")
        await eventually(lambda: r.fake.live_generations == 0)
        assert r.fake.generations_finished == 1


async def test_a_shared_session_timeout_does_not_cap_a_generation() -> None:
    short = aiohttp.ClientTimeout(total=2.0)
    async with rig(SwarmConfig(seconds_per_step=1.0), session_timeout=short) as r:
        for transport in TRANSPORTS:
            images = await r.client.generate(params(steps=5), transport=transport)
            assert len(images) == 1


async def test_a_worker_that_dies_mid_generation_is_a_transport_error() -> None:
    async with rig() as r:
        r.fake.faults.drop_connection()
        with pytest.raises(TransportError):
            await r.client.generate(params())


async def test_a_truncated_json_answer_is_a_swarmui_error_naming_the_status() -> None:
    async with rig() as r:
        r.fake.faults.truncated_json()
        with pytest.raises(SwarmUIError, match=r"HTTP 200 .* not a JSON object") as caught:
            await r.client.generate(params(), transport="http")
        assert caught.value.retryable is True


async def test_interrupt_all_ends_a_running_ws_generation() -> None:
    async with rig() as r, anyio.create_task_group() as tasks:
        r.fake.faults.hang_generation()
        outcome: list[BaseException] = []

        async def generate() -> None:
            try:
                await r.client.generate(params())
            except GenerationFailedError as exc:
                outcome.append(exc)

        tasks.start_soon(generate)
        await eventually(lambda: bool(r.fake.live_generations))
        await r.client.interrupt_all()
    assert [str(exc) for exc in outcome] == ["Generation session interrupted."]

"""The RunPod and SwarmUI HTTP clients against canned answers (aioresponses), in virtual time.

Where a server would have to be taught to misbehave — a retry ladder of mixed 5xx, a
``Retry-After`` hint, a truncated or malformed body, a plain-text 401 from a proxy, a
download that is not an image — a canned answer says it in one line. The behaviours against
real servers stay in test_runpod_client.py and test_swarmui_client.py.
"""

from __future__ import annotations

import io
import json
import random
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import anyio
import pytest
from aioresponses import aioresponses
from PIL import Image
from yarl import URL

from orchestrator._retry import RetryPolicy
from orchestrator.errors import (
    ImageDecodeError,
    RunPodAuthError,
    RunPodRateLimitError,
    RunPodServerError,
    SwarmUIError,
    TransportError,
)
from orchestrator.replay._aioresponses_compat import ensure_aioresponses_compat
from orchestrator.runpod import ApiCall, JobStatus, RunPodClient
from orchestrator.secrets import Secret
from orchestrator.swarmui import SwarmUIClient

pytestmark = pytest.mark.anyio

BASE = "https://api.runpod.invalid/v2"
EP = "ep1"
KEY = "rpa_CANNEDKEY0123456789"
JOB = "job-1"
SWARM = "https://w1-7801.proxy.runpod.invalid"
TOKEN = "Bearer canned-worker-token-0123"


@pytest.fixture
def mocked() -> Any:
    ensure_aioresponses_compat()
    with aioresponses() as mocked:
        yield mocked


@asynccontextmanager
async def runpod(
    calls: list[ApiCall], *, retry: RetryPolicy | None = None
) -> AsyncIterator[RunPodClient]:
    policy = retry or RetryPolicy(attempts=4, base_delay=0.5, max_delay=8.0, rng=random.Random(1))
    async with aiohttp.ClientSession() as session:
        yield RunPodClient(
            session, EP, Secret(KEY), base_url=BASE, retry=policy, on_call=calls.append
        )


def status_url(job: str = JOB) -> str:
    return f"{BASE}/{EP}/status/{job}"


def job(status: str = "COMPLETED", **fields: Any) -> dict[str, Any]:
    return {"id": JOB, "status": status, **fields}


def png(width: int = 8, height: int = 8) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "red").save(buffer, format="PNG")
    return buffer.getvalue()


# --- RunPod: the retry ladder ----------------------------------------------------------------


async def test_status_climbs_the_retry_ladder_through_mixed_5xx_on_the_loop_clock(
    mocked: Any,
) -> None:
    for status in (500, 502, 503):
        mocked.get(status_url(), status=status, body="<html>upstream error</html>")
    mocked.get(status_url(), payload=job(output={"ok": True}))
    calls: list[ApiCall] = []
    expected = RetryPolicy(attempts=4, base_delay=0.5, max_delay=8.0, rng=random.Random(1))
    ladder = [expected.delay(n, retry_after=None) for n in (1, 2, 3)]

    async with runpod(calls) as client:
        started = anyio.current_time()
        answer = await client.status(JOB)
        waited = anyio.current_time() - started

    assert answer.state is JobStatus.COMPLETED
    assert [(c.status, c.attempt) for c in calls] == [(500, 1), (502, 2), (503, 3), (200, 4)]
    assert waited == pytest.approx(sum(ladder), abs=0.01)
    assert [0.25 <= ladder[0] <= 0.5, 0.5 <= ladder[1] <= 1.0, 1.0 <= ladder[2] <= 2.0] == [
        True
    ] * 3


async def test_5xx_past_the_last_attempt_raises_a_retryable_server_error(mocked: Any) -> None:
    mocked.get(status_url(), status=503, repeat=True)
    calls: list[ApiCall] = []
    async with runpod(calls) as client:
        with pytest.raises(RunPodServerError) as raised:
            await client.status(JOB)
    assert (raised.value.status, raised.value.retryable, len(calls)) == (503, True, 4)


async def test_run_is_retried_on_503_but_never_on_500(mocked: Any) -> None:
    run = f"{BASE}/{EP}/run"
    mocked.post(run, status=503)
    mocked.post(run, payload={"id": JOB, "status": "IN_QUEUE"})
    mocked.post(run, status=500)
    calls: list[ApiCall] = []
    async with runpod(calls) as client:
        assert (await client.run({"action": "wakeup"})).id == JOB
        with pytest.raises(RunPodServerError):
            await client.run({"action": "wakeup"})  # the job may exist: a retry could duplicate
    assert [c.status for c in calls] == [503, 200, 500]


# --- RunPod: Retry-After -----------------------------------------------------------------------


async def test_a_429_waits_exactly_its_retry_after(mocked: Any) -> None:
    mocked.get(status_url(), status=429, headers={"Retry-After": "7"})
    mocked.get(status_url(), payload=job())
    calls: list[ApiCall] = []
    async with runpod(calls) as client:
        started = anyio.current_time()
        await client.status(JOB)
        assert anyio.current_time() - started == pytest.approx(7.0, abs=0.01)
    assert [c.status for c in calls] == [429, 200]


async def test_a_retry_after_longer_than_the_policy_allows_gives_up_at_once_with_the_hint(
    mocked: Any,
) -> None:
    mocked.get(status_url(), status=429, headers={"Retry-After": "3600"})
    calls: list[ApiCall] = []
    async with runpod(calls) as client:
        with pytest.raises(RunPodRateLimitError) as raised:
            await client.status(JOB)
    assert raised.value.retry_after == 3600.0
    assert len(calls) == 1


async def test_a_retry_after_that_is_not_seconds_falls_back_to_the_backoff(mocked: Any) -> None:
    # An HTTP-date hint is read against the wall clock, which swarmpod never sleeps on.
    mocked.get(status_url(), status=429, headers={"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"})
    mocked.get(status_url(), payload=job())
    calls: list[ApiCall] = []
    async with runpod(calls) as client:
        started = anyio.current_time()
        await client.status(JOB)
        assert 0.25 <= anyio.current_time() - started <= 0.5  # the first backoff step


# --- RunPod: bodies and auth ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    ['{"id": "job-1", "status": "COMPL', "<html>502 Bad Gateway</html>", '["not", "a job"]', ""],
)
async def test_an_unreadable_status_body_is_asked_again_then_names_the_route(
    mocked: Any, body: str
) -> None:
    mocked.get(status_url(), body=body, repeat=True)
    calls: list[ApiCall] = []
    async with runpod(calls) as client:
        with pytest.raises(TransportError) as raised:
            await client.status(JOB)
    assert "/status" in str(raised.value) and raised.value.retryable
    assert [c.status for c in calls] == [200] * 4  # each read asked again, per the policy


async def test_a_truncated_status_body_once_is_read_again(mocked: Any) -> None:
    mocked.get(status_url(), body='{"id": "job-1", "stat')
    mocked.get(status_url(), payload=job("IN_PROGRESS"))
    async with runpod([]) as client:
        assert (await client.status(JOB)).state is JobStatus.IN_PROGRESS


async def test_an_unreadable_run_answer_is_not_asked_again(mocked: Any) -> None:
    mocked.post(f"{BASE}/{EP}/run", body='{"id": "job-', repeat=True)
    calls: list[ApiCall] = []
    async with runpod(calls) as client:
        with pytest.raises(TransportError) as raised:
            await client.run({"action": "wakeup"})
    assert not raised.value.retryable  # a job may exist: the caller must not blindly resubmit
    assert len(calls) == 1


@pytest.mark.parametrize("status", [401, 403])
async def test_a_plain_text_refusal_of_the_key_is_an_auth_error_after_one_call(
    mocked: Any, status: int
) -> None:
    mocked.get(status_url(), status=status, body="Unauthorized", content_type="text/plain")
    calls: list[ApiCall] = []
    async with runpod(calls) as client:
        with pytest.raises(RunPodAuthError) as raised:
            await client.status(JOB)
    assert (raised.value.status, raised.value.retryable, len(calls)) == (status, False, 1)
    assert KEY not in str(raised.value) and KEY not in repr(raised.value)


async def test_the_key_is_sent_as_a_bearer_header(mocked: Any) -> None:
    mocked.get(status_url(), payload=job())
    async with runpod([]) as client:
        await client.status(JOB)
    ((_, sent),) = [(k, v) for k, v in mocked.requests.items() if k[1] == URL(status_url())]
    assert sent[0].kwargs["headers"]["Authorization"] == f"Bearer {KEY}"


async def test_a_connection_refused_on_run_is_retried_a_dropped_one_is_not(mocked: Any) -> None:
    run = f"{BASE}/{EP}/run"
    refused = aiohttp.ClientConnectorError(
        aiohttp.client_reqrep.ConnectionKey("h", 443, True, True, None, None, None, None),
        ConnectionRefusedError(111, "refused"),
    )
    mocked.post(run, exception=refused)
    mocked.post(run, payload={"id": JOB, "status": "IN_QUEUE"})
    mocked.post(run, exception=aiohttp.ServerDisconnectedError())
    calls: list[ApiCall] = []
    async with runpod(calls) as client:
        assert (await client.run({})).id == JOB
        with pytest.raises(TransportError):
            await client.run({})
    assert [(c.status, c.error) for c in calls] == [
        (None, "ClientConnectorError"),
        (200, None),
        (None, "ServerDisconnectedError"),
    ]


# --- SwarmUI ---------------------------------------------------------------------------------


def swarm_client(session: aiohttp.ClientSession, **kwargs: Any) -> SwarmUIClient:
    return SwarmUIClient(session, SWARM, worker_id="w1", **kwargs)


def api(route: str) -> str:
    return f"{SWARM}/API/{route}"


def session_answer(session_id: str) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "user_id": "local",
        "output_append_user": True,
        "version": "0.9.7",
        "server_id": "00000000-0000-0000-0000-000000000001",
        "permissions": ["*"],
    }


async def test_a_plain_text_401_from_the_gateway_names_the_header_and_hides_the_token(
    mocked: Any,
) -> None:
    mocked.post(api("GetNewSession"), status=401, body="Unauthorized", content_type="text/plain")
    async with aiohttp.ClientSession() as session:
        client = swarm_client(session, authorization=Secret(TOKEN))
        with pytest.raises(SwarmUIError) as raised:
            await client.get_new_session()
    assert raised.value.status == 401 and not raised.value.retryable
    assert "Authorization header" in str(raised.value)
    assert "canned-worker-token" not in str(raised.value)
    assert raised.value.worker_id == "w1"


@pytest.mark.parametrize(
    ("status", "body", "retryable"),
    [
        (200, '{"session_id": "abc", "user_', True),  # truncated: ask again
        (502, "<html><body>502 Bad Gateway</body></html>", True),  # RunPod's proxy
        (400, "Bad Request", False),
    ],
)
async def test_a_body_that_is_not_a_json_object_is_an_error_naming_route_and_status(
    mocked: Any, status: int, body: str, retryable: bool
) -> None:
    mocked.post(api("GetNewSession"), payload=session_answer("s1"))
    mocked.post(api("ListBackends"), status=status, body=body, content_type="text/html")
    async with aiohttp.ClientSession() as session:
        client = swarm_client(session)
        with pytest.raises(SwarmUIError) as raised:
            await client.list_backends()
    error = raised.value
    assert (error.status, error.retryable) == (status, retryable)
    assert "/API/ListBackends" in str(error) and f"HTTP {status}" in str(error)


async def test_an_invalid_session_is_renewed_once_and_the_call_redone_with_the_new_one(
    mocked: Any,
) -> None:
    mocked.post(api("GetNewSession"), payload=session_answer("old"))
    mocked.post(
        api("ListBackends"),
        status=401,
        payload={"error": "Invalid session ID.", "error_id": "invalid_session_id"},
    )
    mocked.post(api("GetNewSession"), payload=session_answer("new"))
    mocked.post(api("ListBackends"), payload={"0": {"id": 0, "type": "comfy", "status": "running"}})
    async with aiohttp.ClientSession() as session:
        client = swarm_client(session)
        backends = await client.list_backends()
    assert list(backends) == ["0"]
    sent = [
        call.kwargs["json"].get("session_id")
        for call in mocked.requests[("POST", URL(api("ListBackends")))]
    ]
    assert sent == ["old", "new"]


def http_generation(mocked: Any, image_path: str) -> None:
    mocked.post(api("GetNewSession"), payload=session_answer("s1"))
    mocked.post(api("GenerateText2Image"), payload={"images": [image_path]})


async def test_a_saved_image_is_downloaded_from_view(mocked: Any) -> None:
    http_generation(mocked, "View/local/raw/2026-01-01/0001-a fox.png")
    mocked.get(
        re.compile(re.escape(f"{SWARM}/View/local/raw/") + ".*"),
        body=png(8, 8),
        content_type="image/png",
    )
    async with aiohttp.ClientSession() as session:
        (image,) = await swarm_client(session).generate(
            {"prompt": "a fox", "seed": 4}, transport="http", expected_size=(8, 8)
        )
    assert (image.seed, image.width, image.mime) == (4, 8, "image/png")


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/html", b"<html><body>Please log in</body></html>"),
        ("application/json", json.dumps({"error": "404, file not found."}).encode()),
    ],
)
async def test_a_view_answer_that_is_not_an_image_says_what_came_instead(
    mocked: Any, content_type: str, body: bytes
) -> None:
    http_generation(mocked, "View/local/raw/x.png")
    mocked.get(f"{SWARM}/View/local/raw/x.png", body=body, content_type=content_type)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ImageDecodeError) as raised:
            await swarm_client(session).generate({"prompt": "a fox"}, transport="http")
    assert content_type in str(raised.value)
    assert "View/local/raw/x.png" in str(raised.value)


async def test_a_truncated_png_from_view_is_a_decode_error(mocked: Any) -> None:
    http_generation(mocked, "View/local/raw/x.png")
    mocked.get(f"{SWARM}/View/local/raw/x.png", body=png()[:-20], content_type="image/png")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ImageDecodeError, match="not a valid image"):
            await swarm_client(session).generate({"prompt": "a fox"}, transport="http")


async def test_a_view_404_is_a_swarmui_error_with_the_status(mocked: Any) -> None:
    http_generation(mocked, "View/local/raw/gone.png")
    mocked.get(
        f"{SWARM}/View/local/raw/gone.png",
        status=404,
        payload={"error": "404, file not found.", "error_id": "file_not_found"},
    )
    async with aiohttp.ClientSession() as session:
        with pytest.raises(SwarmUIError) as raised:
            await swarm_client(session).generate({"prompt": "a fox"}, transport="http")
    assert raised.value.status == 404 and "gone.png" in str(raised.value)

"""No error an API client receives names a worker's URL (v1 SwarmUIs have no gateway token:
the URL is the key to the GPU). The log keeps the URL for the operator."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from service_support import served

from orchestrator.emulator import EmulatedEndpoint, EndpointConfig
from orchestrator.emulator.swarm import SwarmConfig
from orchestrator.replay import load_scenario, run_scenario

pytestmark = pytest.mark.anyio

SCENARIOS = sorted((Path(__file__).parent / "scenarios").glob("*.toml"))
URL_LIKE = re.compile(r"://|127\.0\.0\.1|localhost|proxy\.runpod\.net", re.IGNORECASE)


def assert_names_no_worker(text: str, endpoint: EmulatedEndpoint | None = None) -> None:
    assert not URL_LIKE.search(text), text
    for worker in endpoint.workers if endpoint is not None else ():
        assert worker.id not in text, text
        for url in (worker.public_url, worker.local_url):
            assert not url or url not in text, text


async def test_no_failure_of_the_scenario_library_names_a_worker_url() -> None:
    failures = 0
    for path in SCENARIOS:
        report = await run_scenario(load_scenario(path))
        for outcome in report.outcomes:
            if outcome.error is not None:
                failures += 1
                assert_names_no_worker(str(outcome.error))
    assert failures >= 15  # the library fails in many ways: each message was read


PROXIED = EndpointConfig(
    protocol="v2",
    cold_start_s=20.0,
    idle_timeout_s=5.0,
    proxy_urls=True,
    swarm=SwarmConfig(seconds_per_step=5.0),  # 4 steps: 20 s of generation to fail inside
)
FAULTS: dict[str, Callable[[EmulatedEndpoint], Any]] = {
    "dropped connection": lambda ep: ep.swarm_faults.drop_connection(times=3),
    "bad base64": lambda ep: ep.swarm_faults.bad_base64(times=3),
    "session always invalid": lambda ep: ep.swarm_faults.invalid_session(times=20),
    "no images": lambda ep: ep.swarm_faults.no_images(times=3),
    "hung generation": lambda ep: ep.swarm_faults.hang_generation(times=3),
    "worker dies": lambda ep: ep.faults.worker_dies(after_s=5.0, times=3),
    "lease cancelled": lambda ep: ep.faults.lease_cancelled(after_s=1.0, times=3),
    "lease refused": lambda ep: ep.faults.lease_refused("no GPU here", times=3),
}


CASES = [(fault, transport) for fault in sorted(FAULTS) for transport in ("ws", "http")]
CASES.append(("truncated answer", "http"))  # SwarmUI's HTTP route only
FAULTS["truncated answer"] = lambda ep: ep.swarm_faults.truncated_json(times=3)


@pytest.mark.parametrize(("fault", "transport"), CASES)
async def test_service_errors_over_http_and_websocket_name_no_worker(
    tmp_path: Path, fault: str, transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with served(
        tmp_path, PROXIED, proxy=True, Transport=transport, GenerationTimeoutSec=60
    ) as world:
        FAULTS[fault](world.endpoint)
        client = world.client("ann")
        await client.new_session()
        body = {"images": 1, "prompt": "a fox", "width": 64, "height": 64, "steps": 4}
        status, answer = await client.call("GenerateText2Image", body)
        assert status == 200 and "error" in answer, answer
        assert_names_no_worker(answer["error"], world.endpoint)
        messages, _ = await client.generate_ws(body)
        errors = [m["error"] for m in messages if "error" in m]
        assert errors, messages
        for text in errors:
            assert_names_no_worker(text, world.endpoint)
        for message in messages:
            assert_names_no_worker(str(message), world.endpoint)
    assert world.endpoint.workers  # a worker was woken: its URL existed to leak

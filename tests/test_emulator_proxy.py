"""Workers behind RunPod-style proxy URLs (runpod-api.md §4.6, §8 item 25), routed locally."""

from __future__ import annotations

import re

import aiohttp
import pytest
from support import ENDPOINT, KEY, emulated, run, settings_for, until
from yarl import URL

from orchestrator import Orchestrator
from orchestrator.emulator import Emulator, EmulatorConfig, EmulatorProxyRouting, EndpointConfig
from orchestrator.emulator._proxy_routing import proxied_worker_id
from orchestrator.runpod import RunPodClient
from orchestrator.secrets import Secret
from orchestrator.workers import LeaseTerms, V2Protocol

pytestmark = pytest.mark.anyio

PROXY = re.compile(r"https://([0-9a-z]{14})-7801\.proxy\.runpod\.net")


async def test_workers_report_their_runpod_proxy_url_and_it_maps_to_their_port() -> None:
    async with emulated(EndpointConfig(cold_start_s=10, proxy_urls=True)) as (emulator, ep):
        job_id = await run(emulator, {"input": {"action": "wakeup"}})
        await until(lambda: ep.jobs[job_id].status == "COMPLETED")
        (worker,) = ep.workers
        output = ep.jobs[job_id].output
        match = PROXY.fullmatch(output["public_url"])
        assert match is not None and match.group(1) == worker.id
        assert worker.local_url is not None and worker.local_url.startswith("http://127.0.0.1:")
        assert emulator.local_url_of(output["public_url"]) == worker.local_url
        assert emulator.local_url_of("https://nobody-7801.proxy.runpod.net") is None


async def test_the_engine_generates_through_proxy_urls_with_the_middleware() -> None:
    config = EmulatorConfig(
        endpoints={ENDPOINT: EndpointConfig(cold_start_s=20, proxy_urls=True)}, api_keys=(KEY,)
    )
    async with Emulator(config) as emulator:
        middleware = emulator.proxy_middleware()
        async with aiohttp.ClientSession(middlewares=(middleware,)) as session:
            settings = settings_for(emulator)
            async with Orchestrator(settings, session=session) as orch:
                result = await orch.generate({"prompt": "a fox behind a proxy"}, images=1)
        (worker,) = emulator.endpoint(ENDPOINT).workers
    assert len(result.images) == 1
    assert result.worker_id == worker.id
    assert worker.public_url is not None and PROXY.fullmatch(worker.public_url)


async def test_a_v2_lease_behind_the_proxy_still_needs_its_token() -> None:
    async with emulated(EndpointConfig(protocol="v2", cold_start_s=5, proxy_urls=True)) as (
        emulator,
        _,
    ):
        middleware = emulator.proxy_middleware()
        async with aiohttp.ClientSession(middlewares=(middleware,)) as session:
            client = RunPodClient(session, "ep", Secret("test-key"), base_url=emulator.base_url)
            v2 = V2Protocol(client, poll_interval=1.0, terms=LeaseTerms())
            handle = await v2.wait_for_lease(await v2.request_lease())
            assert PROXY.fullmatch(handle.public_url)
            assert handle.authorization is not None
            url = f"{handle.public_url}/API/GetNewSession"
            async with session.post(url, json={}) as refused:
                assert refused.status == 401
            auth = {"Authorization": handle.authorization.reveal()}
            async with session.post(url, json={}, headers=auth) as answer:
                assert answer.status == 200
                assert "session_id" in await answer.json()
            await v2.release(handle.hold_job_id or "")


async def test_an_emulator_in_another_process_routes_proxy_urls_through_its_workers_route() -> None:
    config = EmulatorConfig(
        endpoints={ENDPOINT: EndpointConfig(cold_start_s=20, proxy_urls=True)}, api_keys=(KEY,)
    )
    async with Emulator(config) as emulator:
        # what `swarmpod generate --emulator-proxy` attaches: only the base URL, id and key
        routing = EmulatorProxyRouting(emulator.base_url, ENDPOINT, Secret(KEY))
        async with aiohttp.ClientSession(middlewares=(routing,)) as session:
            async with Orchestrator(settings_for(emulator), session=session) as orch:
                result = await orch.generate({"prompt": "a fox across processes"}, images=1)
            url = f"{emulator.base_url}/{ENDPOINT}/_emulator/workers"
            async with session.get(url, headers={"Authorization": KEY}) as listed:
                workers = (await listed.json())["workers"]
            async with session.get(url) as refused:
                assert refused.status == 401
        (worker,) = emulator.endpoint(ENDPOINT).workers
    assert len(result.images) == 1 and result.worker_id == worker.id
    assert workers[0]["id"] == worker.id and workers[0]["public_url"] == worker.public_url
    assert workers[0]["local_url"] == worker.local_url


def test_only_runpod_proxy_hosts_name_a_worker() -> None:
    assert proxied_worker_id(URL("https://abc123-7801.proxy.runpod.net/API/X")) == "abc123"
    assert proxied_worker_id(URL("https://proxy.runpod.net.evil.example/")) is None
    assert proxied_worker_id(URL("http://127.0.0.1:7801/")) is None

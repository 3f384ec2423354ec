"""A held v2 worker is watched through its own gateway, not through RunPod.

A lease streams nothing after the hand-over; RunPod would only tell of its end to a ``/stream``
long-poll kept open (a call per lease, and one more every five minutes). The worker's gateway
tells it for nothing: it refuses once the lease ended (the token is revoked) and cannot be
reached once the worker is gone. RunPod is asked (one ``/status``) only when a probe went
unanswered, and a lease whose worker would end it itself is released just before.

Every test runs the real engine against the emulator over loopback HTTP in virtual time;
RunPod calls are counted at the emulator's routes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

import aiohttp
import anyio
import pytest
from support import World, idled_out, world

from orchestrator import GenerationResult
from orchestrator.emulator import EmulatedEndpoint, EmulatedJob, EndpointConfig
from orchestrator.emulator.swarm import SwarmConfig
from orchestrator.errors import OrchestratorError, SwarmUIError, TransportError
from orchestrator.workers import PROBE_INTERVAL_S, Seat, Station, WorkerHandle, WorkerSession
from orchestrator.workers._handle import WakeReceipt

pytestmark = pytest.mark.anyio

PARAMS = {"prompt": "a lighthouse", "width": 64, "height": 64, "steps": 4}


def v2(**overrides: Any) -> EndpointConfig:
    return replace(
        EndpointConfig(protocol="v2", cold_start_s=60.0, idle_timeout_s=5.0), **overrides
    )


def lease(endpoint: EmulatedEndpoint) -> EmulatedJob:
    (job,) = [job for job in endpoint.jobs.values() if job.input.get("action") == "lease"]
    return job


def routes(endpoint: EmulatedEndpoint) -> list[str]:
    return sorted(route for _method, route, _status in endpoint.api_calls)


async def generate(w: World, seed: int) -> GenerationResult:
    return await w.orch.generate({**PARAMS, "seed": seed})


async def test_a_worker_held_warm_for_twenty_minutes_costs_no_runpod_call_while_it_answers() -> (
    None
):
    async with world(v2(), IdleTimeoutSec=1800) as w:
        first = await generate(w, 1)
        await anyio.sleep(1200)  # a /stream long-poll would have been renewed four times
        assert routes(w.endpoint) == ["run", "stream"]  # the request and its hand-over only
        second = await generate(w, 2)
        assert second.cold_start is False and second.worker_id == first.worker_id
        assert routes(w.endpoint) == ["run", "stream"]


async def test_a_lease_ended_by_the_platform_is_seen_within_a_probe_for_one_status() -> None:
    async with world(v2(), IdleTimeoutSec=600) as w:
        await generate(w, 1)
        w.endpoint.cancel(lease(w.endpoint))  # not by swarmpod: no /cancel route called
        await anyio.sleep(PROBE_INTERVAL_S + 1)
        assert w.orch.status().warm == 0
        assert routes(w.endpoint) == ["run", "status", "stream"]
        again = await generate(w, 2)
        assert again.cold_start is True


async def test_a_worker_that_stops_answering_while_runpod_runs_its_lease_is_released() -> None:
    async with world(v2(), IdleTimeoutSec=600) as w:
        await generate(w, 1)
        # its SwarmUI hangs: every probe goes unanswered, while RunPod still runs the lease
        w.endpoint.swarm_faults.latency("GetCurrentStatus", 3600.0, times=100)
        await anyio.sleep(3 * 2 * PROBE_INTERVAL_S + 1)  # three probes, each waited for in full
        assert lease(w.endpoint).status == "CANCELLED"  # released: it bills no longer
        assert routes(w.endpoint) == ["cancel", "run", "status", "status", "status", "stream"]
        assert w.orch.status().warm == 0
        assert await idled_out(w.endpoint) == []


async def test_a_probe_that_goes_unanswered_once_does_not_cost_the_worker() -> None:
    async with world(v2(), IdleTimeoutSec=600) as w:
        first = await generate(w, 1)
        w.endpoint.swarm_faults.latency("GetCurrentStatus", 3600.0, times=1)
        await anyio.sleep(3 * PROBE_INTERVAL_S)
        assert lease(w.endpoint).status == "IN_PROGRESS"
        assert routes(w.endpoint) == ["run", "status", "stream"]
        again = await generate(w, 2)
        assert again.cold_start is False and again.worker_id == first.worker_id


async def test_an_idle_lease_is_released_before_its_worker_would_end_it_itself() -> None:
    # `auto` asks the first lease for the assumed 60 s window plus a margin (120 s); the
    # worker's cold start, measured at 200 s, then makes the window 200 s: the worker would end
    # its lease 120 s after its generation, long before swarmpod's window runs out.
    async with world(v2(cold_start_s=200.0), IdleTimeoutSec="auto", StartupTimeoutSec=400) as w:
        await generate(w, 1)
        job = lease(w.endpoint)
        assert job.input["idle_seconds"] == 120
        assert w.orch.status().idle_window_s > 120
        await anyio.sleep(119)
        assert job.status == "CANCELLED"  # swarmpod's /cancel: not COMPLETED ("ended: idle")
        assert "cancel" in routes(w.endpoint)
        assert w.orch.status().warm == 0


async def test_a_worker_busy_with_a_long_generation_is_not_probed_into_retirement() -> None:
    slow = SwarmConfig(seconds_per_step=30.0)  # 4 steps: two minutes on the worker
    async with world(v2(swarm=slow), IdleTimeoutSec=600, GenerationTimeoutSec=600) as w:
        first = await generate(w, 1)
        # from now on its status answers come late; its generations still come back
        w.endpoint.swarm_faults.latency("GetCurrentStatus", 3600.0, times=100)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(generate, w, 2)
            await anyio.sleep(100)
            assert lease(w.endpoint).status == "IN_PROGRESS"
        assert routes(w.endpoint) == ["run", "stream"]  # not one /status: never asked
        w.endpoint.swarm_faults.clear()
        third = await generate(w, 3)
        assert third.cold_start is False and third.worker_id == first.worker_id


async def test_a_lease_runpod_no_longer_knows_has_ended_and_is_not_asked_about_again() -> None:
    # the platform ends the lease and forgets the job at once (its status answers 404)
    async with world(v2(run_retention_s=0.0), IdleTimeoutSec=600) as w:
        await generate(w, 1)
        w.endpoint.cancel(lease(w.endpoint))
        await anyio.sleep(6 * PROBE_INTERVAL_S)
        assert w.orch.status().warm == 0
        assert routes(w.endpoint) == ["run", "status", "stream"]  # one /status, not one a probe


async def test_a_generation_refused_by_the_gateway_retires_the_worker_for_the_next_ones() -> None:
    async with world(v2(), IdleTimeoutSec=600) as w:
        await generate(w, 1)
        w.endpoint.cancel(lease(w.endpoint))  # the token is revoked; no probe has run yet
        with pytest.raises(SwarmUIError) as refused:
            await generate(w, 2)
        assert refused.value.status == 401
        third = await generate(w, 3)  # not sent to the worker that refused the second
        assert "Waking" in third.path  # it asked for a worker: a new lease
        assert routes(w.endpoint).count("run") == 2


class _Seats:
    """A station of one seat that remembers how each seat came back."""

    def __init__(self, protocol: str) -> None:
        receipt = WakeReceipt("w1", "https://w1-7801.proxy.runpod.net", None, None, None)
        self.seat = Seat(WorkerHandle(receipt, protocol, "job-1"), cold=False)
        self.broken: list[bool] = []

    def try_take(self) -> Seat | None:
        return self.seat

    async def give_back(self, seat: Seat, *, broken: bool = False) -> None:
        self.broken.append(broken)


@pytest.mark.parametrize(
    ("protocol", "error", "retired"),
    [
        ("v2", SwarmUIError("refused", status=401), True),  # the lease's token was revoked
        ("v1", SwarmUIError("refused", status=401), False),  # a setting: no worker cures it
        ("v2", SwarmUIError("CUDA out of memory", status=200), False),
        ("v1", TransportError("unreachable"), True),
        ("v2", TransportError("unreachable"), True),
    ],
)
async def test_a_worker_is_retired_only_for_errors_that_say_it_is_gone(
    protocol: str, error: OrchestratorError, retired: bool
) -> None:
    seats = _Seats(protocol)
    async with aiohttp.ClientSession() as http:
        use = WorkerSession(
            cast(Station, seats), http=http, request_timeout=1, release_timeout=1, poll_interval=1
        )

        async def fail_on_the_worker() -> None:
            async with use:
                assert use.take_warm()
                raise error

        with pytest.raises(OrchestratorError):
            await fail_on_the_worker()
    assert seats.broken == [retired]

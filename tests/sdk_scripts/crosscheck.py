"""Drive the emulator with the official runpod SDK and report what the SDK saw.

Run by ``tests/test_sdk_crosscheck.py`` with the interpreter of ``.venv-sdk`` (runpod 1.12.0),
never imported by swarmpod. One process runs every flow of one client, in order:

    python crosscheck.py --client sync  --base-url URL --endpoint EP --key K --limited-endpoint L
    python crosscheck.py --client async --base-url URL --endpoint EP --key K

Each check prints one JSON line ``{"check": NAME, ...observations}`` to stdout. A check that
raises unexpectedly reports ``crashed`` and ``traceback`` instead, and the next check still runs;
the pytest side turns every line into readable assertions. The endpoint must start with no
workers and have at most one, so queued and running jobs are predictable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import runpod

KEEPALIVE_S = 2  # long enough to queue jobs behind it and read /health while it runs
STREAM_PROBE = {"action": "keepalive", "duration": 1, "interval": 1, "stream_probe": True}
"""A job the pytest side streams chunks into (emit_stream) as soon as it runs."""
CANCELLED_STREAM_GUARD_S = 2.5  # two /stream polls of a CANCELLED job without the generator ending
TERMINAL = ("COMPLETED", "FAILED", "TIMED_OUT", "CANCELLED")


@contextmanager
def check(name: str) -> Iterator[dict[str, Any]]:
    """Collect one check's observations and print them as a JSON line, even if it crashed."""
    observed: dict[str, Any] = {}
    try:
        yield observed
    except Exception as exc:
        observed["crashed"] = f"{type(exc).__name__}: {exc}"
        observed["traceback"] = traceback.format_exc()
    print(json.dumps({"check": name, **observed}, default=repr), flush=True)


def outcome(call: Callable[[], Any]) -> dict[str, Any]:
    """What a call did: ``{"returned": value}`` or ``{"raised": type, "message": text}``."""
    try:
        return {"returned": call()}
    except Exception as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        return {"raised": type(exc).__name__, "message": str(exc), "http_status": status}


async def async_outcome(call: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
    """:func:`outcome` for a coroutine."""
    try:
        return {"returned": await call()}
    except Exception as exc:
        return {"raised": type(exc).__name__, "message": str(exc)}


def append_new(seen: list[str], status: str) -> None:
    if not seen or seen[-1] != status:
        seen.append(status)


# -- the synchronous client: runpod.Endpoint ------------------------------------------------


def sync_flows(args: argparse.Namespace) -> None:
    runpod.api_key = args.key
    ep = runpod.Endpoint(args.endpoint)

    with check("lifecycle") as lifecycle:
        job = ep.run({"action": "keepalive", "duration": KEEPALIVE_S, "interval": 1})
        seen: list[str] = []
        lifecycle["id"] = job.job_id
        while (status := job.status()) == "IN_QUEUE":  # the worker is still booting
            append_new(seen, status)
            time.sleep(0.05)
        append_new(seen, status)
        lifecycle["statuses"] = list(seen)

    with check("purge_queue") as purge:
        queued = [ep.run({"action": "health"}), ep.run({"action": "wakeup"})]
        purge["queued_ids"] = [q.job_id for q in queued]
        purge["queued_statuses"] = [q.status() for q in queued]
        purge["returned"] = ep.purge_queue()
        purge["running_status_after"] = job.status()
        purge["purged_status"] = outcome(queued[0].status)

    with check("health") as health:
        health["returned"] = ep.health()

    with check("output") as output:
        output["returned"] = job.output(timeout=10)
        append_new(seen, job.status())
        output["statuses"] = seen
        output["id"] = job.job_id

    with check("run_sync") as run_sync:
        run_sync["returned"] = ep.run_sync({"action": "health"}, timeout=30)

    with check("run_sync_failed") as failed:
        failed["returned"] = ep.run_sync({"action": "no-such-action"}, timeout=30)

    with check("empty_input") as empty:
        wrapped = ep.run({"input": {}})  # falsy "input": the SDK wraps it once more
        empty["id"] = wrapped.job_id
        empty["returned"] = wrapped.output(timeout=10)

    with check("stream_without_chunks") as quiet:
        quiet["chunks"] = list(wrapped.stream())  # wrapped is COMPLETED and never streamed

    with check("stream") as stream:
        streaming = ep.run(STREAM_PROBE)
        stream["id"] = streaming.job_id
        stream["chunks"] = list(streaming.stream())

    with check("policy") as policy:  # a truthy "input" is sent as given, policy included
        policy["returned"] = ep.run_sync(
            {"input": {"action": "keepalive", "duration": 5}, "policy": {"executionTimeout": 500}},
            timeout=30,
        )

    with check("cancel") as cancel:
        running = ep.run({"action": "keepalive", "duration": 60, "interval": 1})
        cancel["id"] = running.job_id
        while running.status() == "IN_QUEUE":
            time.sleep(0.05)
        cancel["status_before"] = running.status()
        cancel["returned"] = running.cancel()
        cancel["status_after"] = running.status()

    with check("wrong_key") as wrong:
        intruder = runpod.Endpoint(args.endpoint, api_key="not-a-key")
        wrong["health"] = outcome(intruder.health)
        wrong["run"] = outcome(lambda: intruder.run({"action": "health"}))

    with check("unknown_endpoint") as unknown:
        nowhere = runpod.Endpoint("no-such-endpoint")
        unknown["health"] = outcome(nowhere.health)
        unknown["run"] = outcome(lambda: nowhere.run({"action": "health"}))

    if args.limited_endpoint:
        with check("rate_limited") as limited:
            lep = runpod.Endpoint(args.limited_endpoint)
            first = lep.run({"action": "health"})
            limited["second_run"] = outcome(lambda: lep.run({"action": "health"}))
            limited["first_status"] = first.status()
            started = time.monotonic()
            limited["second_status"] = outcome(first.status)
            limited["second_status_s"] = time.monotonic() - started


# -- the asynchronous client: runpod.AsyncioEndpoint ----------------------------------------


async def async_flows(args: argparse.Namespace) -> None:
    runpod.api_key = args.key
    async with runpod.http_client.AsyncClientSession() as session:
        ep = runpod.AsyncioEndpoint(args.endpoint, session)

        with check("lifecycle") as lifecycle:
            job = await ep.run({"action": "keepalive", "duration": KEEPALIVE_S, "interval": 1})
            seen: list[str] = []
            lifecycle["id"] = job.job_id
            while (status := await job.status()) == "IN_QUEUE":
                append_new(seen, status)
                await asyncio.sleep(0.05)
            append_new(seen, status)
            lifecycle["statuses"] = list(seen)

        with check("purge_queue") as purge:
            queued = [await ep.run({"action": "health"}), await ep.run({"action": "wakeup"})]
            purge["queued_ids"] = [q.job_id for q in queued]
            purge["queued_statuses"] = [await q.status() for q in queued]
            purge["returned"] = await ep.purge_queue()
            purge["running_status_after"] = await job.status()

        with check("health") as health:
            health["returned"] = await ep.health()

        with check("output") as output:
            output["returned"] = await job.output(timeout=10)
            append_new(seen, await job.status())
            output["statuses"] = seen
            output["id"] = job.job_id

        with check("empty_input") as empty:
            wrapped = await ep.run({"input": {}})  # AsyncioEndpoint.run always wraps
            bare = await ep.run({})
            empty["id"], empty["bare_id"] = wrapped.job_id, bare.job_id
            empty["returned"] = await wrapped.output(timeout=10)
            empty["bare_returned"] = await bare.output(timeout=10)

        with check("stream_without_chunks") as quiet:
            quiet["chunks"] = [chunk async for chunk in wrapped.stream()]

        with check("stream") as stream:
            streaming = await ep.run(STREAM_PROBE)
            stream["id"] = streaming.job_id
            stream["chunks"] = [chunk async for chunk in streaming.stream()]

        with check("cancel") as cancel:
            running = await ep.run({"action": "keepalive", "duration": 60, "interval": 1})
            cancel["id"] = running.job_id
            while await running.status() == "IN_QUEUE":  # noqa: ASYNC110 (the SDK only polls)
                await asyncio.sleep(0.05)
            cancel["status_before"] = await running.status()
            cancel["returned"] = await running.cancel()
            cancel["status_after"] = await running.status()

        with check("stream_after_cancel") as after_cancel:
            chunks: list[Any] = []

            async def drain() -> None:
                chunks.extend([chunk async for chunk in running.stream()])

            try:
                await asyncio.wait_for(drain(), CANCELLED_STREAM_GUARD_S)
                after_cancel["ended"] = True
            except TimeoutError:
                after_cancel["ended"] = False
            after_cancel["chunks"] = chunks
            after_cancel["guard_s"] = CANCELLED_STREAM_GUARD_S

        with check("wrong_key") as wrong:
            intruder = runpod.AsyncioEndpoint(args.endpoint, session, api_key="not-a-key")
            wrong["health"] = await async_outcome(intruder.health)
            wrong["run"] = await async_outcome(lambda: intruder.run({"action": "health"}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client", choices=("sync", "async"), required=True)
    parser.add_argument("--base-url", required=True, help="http://127.0.0.1:PORT/v2")
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--limited-endpoint", help="an endpoint with tight rate limits")
    args = parser.parse_args()
    runpod.endpoint_url_base = args.base_url  # read by each Endpoint when it is built (§5.2)
    print(json.dumps({"check": "sdk", "version": runpod.__version__}), flush=True)
    if args.client == "sync":
        sync_flows(args)
    else:
        asyncio.run(async_flows(args))


if __name__ == "__main__":
    main()

"""The service fuzzed from outside (a seeded generator, so every failure replays): malformed
bodies, wrong types, huge and deep JSON, path tricks, raw HTTP garbage, other users' tokens
and sessions, WebSocket abuse. It holds when nothing answers 5xx or ``internal_error``, no
traceback or secret reaches the log, nobody gets past a check they should not pass, and the
service still generates afterwards."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import string
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from service_support import Served, served
from support import KEY

from orchestrator import Secret
from orchestrator.accounts import Role, role_has
from orchestrator.emulator import EndpointConfig
from orchestrator.service._routes import ROUTES

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

REQUESTS = 2500
SEED = 13
USERS = {"guest": Role.GUEST, "user": Role.USER, "ann": Role.POWERUSER, "bob": Role.POWERUSER}
V2 = EndpointConfig(protocol="v2", cold_start_s=30.0, idle_timeout_s=5.0)
ROUTE_NAMES = [
    "GetNewSession", "ListBackends", "ListModels", "DescribeModel", "SelectModel",
    "GenerateText2Image", "GenerateText2ImageWS", "InterruptAll", "GetCurrentStatus",
    "TriggerRefresh", "FreeBackendMemory", "SetAPIKey", "GetAPIKeyStatus", "GetStatus",
    "RefreshModels", "Prewarm",
]  # fmt: skip
PARAMS = [
    "images", "path", "depth", "subtype", "sortBy", "modelName", "model", "keyType", "key",
    "other_sessions", "workers", "backend", "exactbackendid", "width", "height", "steps",
    "cfgscale", "seed", "prompt", "session_id", "system_ram", "allowRemote", "presets",
]  # fmt: skip
PATHS = [
    "/API/../API/GetNewSession", "/API/%2e%2e/GetNewSession", "/API/GetNewSession/extra",
    "/api/GETNEWSESSION", "//API//GetNewSession", "/API/RunPod/../../etc/passwd",
    "/API/RunPod/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/API/%00", "/API/Get%00NewSession",
    "/API/\u00e9t\u00e9", "/API/" + "A" * 4000, "/View/ann/raw/x.png", "/Error/NoGetAPI",
    "/API/RunPod/", "/API/", "/API", "/", "/API/RunPod/GetStatus?x=1&x=2", "/.env",
    "/API/GetNewSession?session_id=x", "/API/RunPod/GetStatus/../RefreshModels",
]  # fmt: skip
Sessions = dict[Any, str]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]


@dataclass
class Verdict:
    """What the fuzzer saw."""

    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def note(self, what: str, status: int, body: bytes) -> None:
        self.requests += 1
        self.statuses[status] += 1
        if status >= 500:
            self.problems.append(f"{status} for {what}")
        if b"internal_error" in body or b"Traceback" in body:
            self.problems.append(f"internal error for {what}: {body[:200]!r}")


def value(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON value, from plain to hostile."""
    choice = rng.randrange(16 if depth < 3 else 10)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False])
    if choice == 2:
        return rng.choice([0, 1, -1, 2**31, -(2**31) - 1, 2**63, 10**30, 7])
    if choice == 3:
        return rng.choice([0.5, -1e308, 1e-300, 3.14, 1e20])
    if choice == 4:
        return "".join(rng.choice(string.printable) for _ in range(rng.randrange(20)))
    if choice == 5:
        return rng.choice(["", " ", "none", "runpod_api", "Stable-Diffusion", "Name", "-1", "1"])
    if choice == 6:
        return "\u0000\ud7ff\ue000\U0001f600" * rng.randrange(1, 4)
    if choice == 7:
        return "x" * rng.choice([1000, 100_000])
    if choice == 8:
        return rng.choice(["../../etc/passwd", "View/bob/raw/x.png", "%00", "${jndi:x}"])
    if choice == 9:
        return str(rng.randrange(-5, 20))
    if choice < 13:
        return [value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(PARAMS): value(rng, depth + 1) for _ in range(rng.randrange(4))}


def body_for(rng: random.Random, session_id: str | None) -> bytes:
    """A request body: mostly JSON objects of random parameters, sometimes not JSON at all."""
    kind = rng.randrange(12)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
    if kind == 1:
        return rng.choice([b"", b"null", b"[]", b"1", b'"x"', b"{", b'{"a":', b"\xff\xfe{}"])
    if kind == 2:
        depth = rng.choice([50, 65, 500, 5000, 200_000])
        return ('{"x": ' + "[" * depth + "]" * depth + "}").encode()
    if kind == 3:
        return b'{"images": NaN, "steps": Infinity, "seed": -Infinity}'
    if kind == 4:
        return b'{"images": 1' + b", " + b'"a": 1, ' * rng.randrange(1, 50_000) + b'"b": 2}'
    if kind == 5:
        return ('{"n": ' + "9" * rng.choice([100, 5000]) + "}").encode()
    fields = {rng.choice(PARAMS): value(rng) for _ in range(rng.randrange(6))}
    if session_id is not None and rng.random() < 0.8:
        fields["session_id"] = session_id
    return json.dumps(fields).encode()


async def fuzz_http(
    world: Served, rng: random.Random, verdict: Verdict, sessions: Sessions
) -> None:
    """One random HTTP request through aiohttp's client."""
    who = rng.choice([*USERS, None, "forged", "revoked"])
    token = {
        None: None,
        "forged": rng.choice(["sp_forged", "Bearer", "", "x" * 300, world.tokens["ann"][:-1]]),
        "revoked": world.tokens["revoked"],
    }.get(who, world.tokens.get(str(who)))
    own = sessions.get(who)
    session_id = rng.choice([own, own, sessions["bob"], "0" * 40, "", None])
    if rng.random() < 0.15:
        path, method = rng.choice(PATHS), rng.choice(METHODS)
    else:
        route = rng.choice(ROUTE_NAMES)
        path = rng.choice([f"/API/{route}", f"/API/RunPod/{route}", f"/api/{route.lower()}"])
        method = "POST" if rng.random() < 0.9 else rng.choice(METHODS)
    headers = {"Content-Type": rng.choice(["application/json"] * 6 + ["text/plain", ""])}
    if token is not None:
        headers["Authorization"] = rng.choice([f"Bearer {token}"] * 5 + [token, f"Basic {token}"])
    if rng.random() < 0.1:
        headers["X-Session-ID"] = str(session_id)
    data = body_for(rng, session_id)
    async with aiohttp.ClientSession() as http:
        try:
            async with http.request(
                method, f"{world.service.url}{path}", data=data, headers=headers
            ) as response:
                raw = await response.read()
                status = response.status
        except aiohttp.ClientError as exc:  # the server may close a connection it refuses
            verdict.note(f"{method} {path} ({type(exc).__name__})", 400, b"")
            return
    what = f"{method} {path} as {who} with {data[:80]!r}"
    verdict.note(what, status, raw)
    check_no_bypass(what, who, path, method, status, raw, verdict)


def check_no_bypass(
    what: str, who: Any, path: str, method: str, status: int, raw: bytes, verdict: Verdict
) -> None:
    """A success where a check should have refused is a bypass."""
    succeeded = status == 200 and b'"error"' not in raw
    name = path.split("?")[0].rstrip("/").rsplit("/", 1)[-1].lower()
    if who not in USERS and status != 401:
        verdict.problems.append(f"no valid token but {status}: {what}")
    route = ROUTES.get(name)
    if who in USERS and route is not None and succeeded and path.lower().startswith("/api/"):
        role = USERS[who]
        if not all(role_has(role, permission) for permission in route.permissions):
            verdict.problems.append(f"{who} passed the permissions of {name}: {what}")


async def raw_garbage(world: Served, rng: random.Random, verdict: Verdict) -> None:
    """Bytes aiohttp must parse itself: bad request lines, headers, lengths, encodings."""
    token = world.tokens["ann"]
    host, port = world.service.url.removeprefix("http://").split(":")
    request = rng.choice(
        [
            b"GARBAGE\r\n\r\n",
            b"POST /API/GetNewSession HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + token.encode()
            + b"\x01\r\nContent-Length: 2\r\n\r\n{}",
            b"POST /API/GetNewSession HTTP/1.1\r\nHost: x\r\nContent-Length: 99\r\n\r\n{}",
            b"POST /API/GetNewSession HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n{}",
            b"POST /API/GetNewSession HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: application/json\r\nAuthorization: Bearer "
            + token.encode()
            + b"\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
            b"GET /API/GetNewSession HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
            b"POST /API/GetNewSession HTTP/9.9\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS hello on the HTTP port
        ]
    )
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        with anyio.move_on_after(5):
            answer = await reader.read(65536)
    except ConnectionError:
        answer = b""
    finally:
        writer.close()
    head = answer.split(b"\r\n", 1)[0]
    status = int(head.split()[1]) if head.startswith(b"HTTP/") else 400
    verdict.note(f"raw {request[:40]!r}", status, answer)
    if token.encode() in answer:
        verdict.problems.append(f"a token was echoed back: {request[:40]!r}")


async def websocket_abuse(
    world: Served, rng: random.Random, verdict: Verdict, sessions: Sessions
) -> None:
    """WebSocket misuse: no token, wrong route, binary, junk, deep or huge JSON, early close."""
    who = rng.choice(["ann", "guest", None])
    headers = {"Authorization": f"Bearer {world.tokens[who]}"} if who else {}
    route = rng.choice(["GenerateText2ImageWS", "GenerateText2ImageWS", "GetNewSession", "Nope"])
    action = rng.randrange(8)
    sent: Any = None
    async with aiohttp.ClientSession(headers=headers) as http:
        try:
            async with http.ws_connect(f"{world.service.url}/API/{route}") as ws:
                if action == 0:
                    await ws.send_bytes(b"\x00\x01binary")
                elif action == 1:
                    await ws.send_str("not json {")
                elif action == 2:
                    await ws.send_str('{"x": ' + "[" * 100_000 + "]" * 100_000 + "}")
                elif action == 3:
                    await ws.send_str(json.dumps({"session_id": sessions["bob"], "images": 1}))
                elif action == 4:
                    await ws.close()
                elif action == 5:
                    sent = {"session_id": sessions.get(who), "images": value(rng)}
                    await ws.send_str(json.dumps(sent))
                elif action == 6:
                    await ws.send_str(json.dumps([1, 2, 3]))
                else:
                    huge = {"session_id": sessions.get(who), "x": "y" * 2**20}
                    await ws.send_str(json.dumps(huge))
                messages = []
                with anyio.move_on_after(120):
                    async for message in ws:
                        messages.append(message.data if isinstance(message.data, str) else "")
            text = "\n".join(messages).encode()
            verdict.note(f"WS {route} as {who} action {action}", 101, text)
            if who is None and text:
                verdict.problems.append(f"WS without a token got messages: {text[:100]!r}")
        except aiohttp.WSServerHandshakeError as exc:
            verdict.note(f"WS {route} as {who} (handshake)", exc.status, b"")
            if who is not None and exc.status >= 500:
                verdict.problems.append(f"WS handshake {exc.status}")


async def test_the_service_survives_fuzzing_with_no_5xx_no_internal_error_no_bypass(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    rng = random.Random(SEED)
    verdict = Verdict()
    users = {**USERS, "revoked": Role.POWERUSER}
    async with served(tmp_path, V2, users=users, IdleTimeoutSec=0) as world:
        accounts = world.service.accounts
        await accounts.set_runpod_key("bob", Secret("rpa_BOBS_OWN_KEY_123"))
        (revoked,) = await accounts.list_tokens("revoked")
        await accounts.revoke_token("revoked", revoked.id)
        sessions: Sessions = {}
        for name in USERS:
            client = world.client(name)
            sessions[name] = (await client.new_session())["session_id"]
        steps: list[Callable[[], Coroutine[Any, Any, None]]] = []
        for _ in range(REQUESTS):
            kind = rng.random()
            if kind < 0.85:
                steps.append(lambda: fuzz_http(world, rng, verdict, sessions))
            elif kind < 0.93:
                steps.append(lambda: raw_garbage(world, rng, verdict))
            else:
                steps.append(lambda: websocket_abuse(world, rng, verdict, sessions))
        for step in steps:
            await step()

        ann = world.client("ann")  # and still it serves
        await ann.new_session()
        status, answer = await ann.call(
            "GenerateText2Image", {"images": 1, "prompt": "after the storm", "width": 64}
        )
        assert status == 200 and len(answer["images"]) == 1, answer
        messages, _ = await ann.generate_ws({"images": 1, "prompt": "ws after", "width": 64})
        assert any("image" in m for m in messages), messages
        assert len(world.service.sessions) <= 100 * len(USERS)

    assert verdict.problems == [], "\n".join(verdict.problems[:20])
    assert verdict.requests >= REQUESTS
    service_log = [r for r in caplog.records if not r.name.startswith("swarmpod.emulator")]
    loud = [r for r in service_log if r.levelno >= logging.ERROR or r.exc_info]
    assert not loud, [(r.name, r.getMessage()[:200]) for r in loud[:10]]
    logged = "\n".join(r.getMessage() for r in service_log)
    for secret in (*world.tokens.values(), KEY, "rpa_BOBS_OWN_KEY_123"):
        assert secret not in logged
    print(f"fuzz: {verdict.requests} requests, statuses {dict(sorted(verdict.statuses.items()))}")

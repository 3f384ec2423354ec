"""Test support for the service: an emulator, a running ``SwarmpodService`` on a local port,
users with tokens, and a small SwarmUI-API client speaking to it over real HTTP/WebSocket."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import anyio
from cryptography.fernet import Fernet
from support import ENDPOINT, KEY

from observability import Telemetry
from orchestrator import Settings
from orchestrator.accounts import Role
from orchestrator.emulator import EmulatedEndpoint, Emulator, EmulatorConfig, EndpointConfig
from orchestrator.service import ServiceConfig, SwarmpodService

MASTER_KEY = Fernet.generate_key().decode()
V2 = EndpointConfig(protocol="v2", cold_start_s=60.0, idle_timeout_s=5.0)


@dataclass
class Served:
    """A running service over one emulated endpoint, with a token per role."""

    service: SwarmpodService
    emulator: Emulator
    endpoint: EmulatedEndpoint
    state_dir: Path
    tokens: dict[str, str] = field(default_factory=dict)

    def client(self, user: str) -> ApiClient:
        """A client carrying ``user``'s token."""
        return ApiClient(self.service.url, self.tokens[user])


@contextlib.asynccontextmanager
async def served(
    tmp_path: Path,
    endpoint: EndpointConfig = V2,
    *,
    backend_key: str | None = KEY,
    keys: tuple[str, ...] = (KEY,),
    users: Mapping[str, Role] | None = None,
    env: Mapping[str, str] | None = None,
    telemetry: Telemetry | None = None,
    proxy: bool = False,
    **settings: Any,
) -> AsyncIterator[Served]:
    """An emulator and a service on 127.0.0.1 (a free port) with ``users`` (name → role).

    With ``proxy`` the service reaches the workers through the emulator's proxy middleware
    (for an endpoint with ``proxy_urls``: RunPod's own worker URLs).
    """
    config = EmulatorConfig(endpoints={ENDPOINT: endpoint}, api_keys=keys)
    state_dir = tmp_path / "state"
    async with Emulator(config) as emulator:
        values: dict[str, Any] = {
            "EndpointId": ENDPOINT,
            "RunPodBaseUrl": emulator.base_url,
            "WorkerProtocol": endpoint.protocol,
            "PollIntervalMs": 1000,
            "StateFile": str(state_dir / "swarmpod.sqlite3"),
            **settings,
        }
        if backend_key is not None:
            values["RunPodApiKey"] = backend_key
        service_config = ServiceConfig(
            host="127.0.0.1",
            port=0,
            state_dir=state_dir,
            backends={"main": Settings.from_mapping(values)},
        )
        environ = {"SWARMPOD_MASTER_KEY": MASTER_KEY} if env is None else env
        middlewares = (emulator.proxy_middleware(),) if proxy else ()
        async with (
            aiohttp.ClientSession(
                middlewares=middlewares, timeout=aiohttp.ClientTimeout(total=None)
            ) as http,
            SwarmpodService(
                service_config, env=environ, telemetry=telemetry, session=http
            ) as service,
        ):
            world = Served(service, emulator, emulator.endpoint(ENDPOINT), state_dir)
            roster = users if users is not None else {"ann": Role.POWERUSER}
            for name, role in roster.items():
                if await service.accounts.get_user(name) is None:
                    await service.accounts.add_user(name, role)
                world.tokens[name] = (await service.accounts.issue_token(name)).reveal()
            yield world


async def models_discovered(world: Served) -> int:
    """Wait (virtual time) until AutoRefresh stored the first backend's models; their count."""
    with anyio.fail_after(300):
        while world.service.backends[0].catalog is None:  # noqa: ASYNC110
            await anyio.sleep(1)
    return world.service.backends[0].catalog.count()


@dataclass
class ApiClient:
    """Calls ``/API/<route>`` like SwarmSwarmBackend: JSON bodies, the Authorization header,
    the body parsed whatever the status."""

    base_url: str
    token: str | None
    session_id: str | None = None
    extra_headers: dict[str, str] = field(default_factory=dict)

    def headers(self) -> dict[str, str]:
        """The Authorization header (when there is a token), and ``extra_headers``."""
        auth = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return {**auth, **self.extra_headers}

    async def call(
        self, route: str, body: Mapping[str, Any] | None = None, *, session: bool = True
    ) -> tuple[int, dict[str, Any]]:
        """POST ``body`` (plus the session id) to ``/API/<route>``: (status, JSON answer)."""
        payload = dict(body or {})
        if session and self.session_id and "session_id" not in payload:
            payload["session_id"] = self.session_id
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{self.base_url}/API/{route}", json=payload, headers=self.headers()) as r,
        ):
            return r.status, json.loads(await r.read())

    async def raw(
        self,
        method: str,
        path: str,
        *,
        data: bytes | io.BytesIO | None = None,
        headers: Mapping[str, str] = {},
    ) -> tuple[int, bytes]:
        """Any request, for refusals: (status, body bytes)."""
        async with (
            aiohttp.ClientSession() as http,
            http.request(
                method, f"{self.base_url}{path}", data=data, headers={**self.headers(), **headers}
            ) as r,
        ):
            return r.status, await r.read()

    async def new_session(self) -> dict[str, Any]:
        """``GetNewSession``; keeps the session id."""
        status, answer = await self.call("GetNewSession", {}, session=False)
        assert status == 200, answer
        self.session_id = answer["session_id"]
        return answer

    async def generate_ws(self, body: Mapping[str, Any]) -> tuple[list[dict[str, Any]], int | None]:
        """``GenerateText2ImageWS``: every message until the close, and the close code."""
        messages: list[dict[str, Any]] = []
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(
                f"{self.base_url}/API/GenerateText2ImageWS", headers=self.headers()
            ) as ws,
        ):
            await ws.send_json({"session_id": self.session_id, **body})
            async for message in ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    messages.append(json.loads(message.data))
            return messages, ws.close_code

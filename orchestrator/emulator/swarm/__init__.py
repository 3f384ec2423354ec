"""A fake SwarmUI server (HTTP + WebSocket) that behaves like SwarmUI, with fault injection.

Built to specs/swarmui-api.md (§1-§8 and the fake-server checklist §11): the API pipeline,
sessions, roles and permissions, accounts (``swarm_token`` cookies), a required
``Authorization`` header (static, ``SwarmConfig.required_authorization``, or the v2 worker
gateway's per-lease bearer token, ``FakeSwarmUI.set_gateway_token``), generation over HTTP and
WebSocket, models and backends, upstream API keys and, optionally, the RunPod Serverless
extension's routes. One ``FakeSwarmUI`` plays the SwarmUI of one emulated RunPod worker; a
``SwarmFaults`` script may be shared by all workers of an endpoint. All time comes from the
event loop (and wall-clock dates from ``SwarmConfig.clock``).
"""

from ._config import DEFAULT_MODELS as DEFAULT_MODELS
from ._config import ModelSpec as ModelSpec
from ._config import SwarmConfig as SwarmConfig
from ._config import SwarmFaults as SwarmFaults
from ._render import render_png as render_png
from ._server import FakeSwarmUI as FakeSwarmUI
from ._state import BACKEND_STATES as BACKEND_STATES
from ._state import BackendState as BackendState

__all__ = [
    "BACKEND_STATES",
    "DEFAULT_MODELS",
    "BackendState",
    "FakeSwarmUI",
    "ModelSpec",
    "SwarmConfig",
    "SwarmFaults",
    "render_png",
]

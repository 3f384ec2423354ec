"""An embedded RunPod serverless emulator: endpoints, queue, workers and their fake SwarmUIs.

Facts it is built to: ``specs/runpod-api.md`` §2-§4 and ``specs/worker-protocols.md``. Its
workers run one of two built-in worker images, chosen per endpoint by
``EndpointConfig.protocol``: ``v1`` (HartsyAI wakeup/keepalive) or ``v2`` (leases: a streaming
``lease`` job hands out the worker's URL and a per-lease bearer token that its fake SwarmUI's
gateway requires, and ends the lease itself when the worker sits idle or at its maximum).
Beyond RunPod's routes it serves one emulator-only debug route,
``GET /v2/{endpoint_id}/_emulator/ledger``: the endpoint's per-second billing ledger.

>>> async def main() -> None:  # doctest: +SKIP
...     config = EmulatorConfig(endpoints={"ep": EndpointConfig(cold_start_s=90)})
...     async with Emulator(config) as emu:
...         print(emu.base_url)  # http://127.0.0.1:PORT/v2
...         print(emu.endpoint("ep").health())
"""

from ._config import EmulatorConfig as EmulatorConfig
from ._config import EndpointConfig as EndpointConfig
from ._config import PolicyLimits as PolicyLimits
from ._emulator import Emulator as Emulator
from ._endpoint import EmulatedEndpoint as EmulatedEndpoint
from ._faults import EndpointFaults as EndpointFaults
from ._jobs import EmulatedJob as EmulatedJob
from ._ledger import LedgerEntry as LedgerEntry
from ._proxy_routing import EmulatorProxyRouting as EmulatorProxyRouting
from ._ratelimit import RateLimits as RateLimits
from ._webhooks import WebhookCall as WebhookCall
from ._worker import EmulatedWorker as EmulatedWorker
from ._worker import WorkerState as WorkerState

__all__ = [
    "EmulatedEndpoint",
    "EmulatedJob",
    "EmulatedWorker",
    "Emulator",
    "EmulatorConfig",
    "EmulatorProxyRouting",
    "EndpointConfig",
    "EndpointFaults",
    "LedgerEntry",
    "PolicyLimits",
    "RateLimits",
    "WebhookCall",
    "WorkerState",
]

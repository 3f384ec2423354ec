"""The service (``swarmpod serve``): the seed extension's routes and a SwarmUI-compatible API.

A real SwarmUI adds swarmpod as a *Swarm-API-Backend* (specs/swarmui-api.md §6): it calls
``GetNewSession``, ``ListBackends``, ``ListModels``, ``SelectModel`` and
``GenerateText2ImageWS`` here as on another SwarmUI, while swarmpod wakes, holds and releases
RunPod workers underneath. Users authenticate with ``Authorization: Bearer <token>``.
"""

from ._config import ServiceConfig as ServiceConfig
from ._routes import route_table as route_table
from ._service import SwarmpodService as SwarmpodService

__all__ = ["ServiceConfig", "SwarmpodService", "route_table"]

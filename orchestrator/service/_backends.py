"""One configured RunPod backend of the service: its orchestrator, its models, its counters."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import anyio

from .._orchestrator import Orchestrator
from .._result import GenerationResult
from ..models import ModelCatalog, ModelRegistry, discover_models
from ..settings import Settings

__all__ = ["DEFAULT_FEATURES", "Backend"]

log = logging.getLogger("swarmpod.service")

DEFAULT_FEATURES: Final = ("comfyui", "refiners", "controlnet", "variation_seed", "folderslash")
"""Features advertised before a worker was asked for its own (ComfyUI self-start defaults)."""

BACKEND_TYPE: Final = "swarmpod_runpod"
"""The backend type reported to SwarmUI; not ``comfyui_*``, so SwarmUI asks no Comfy routes."""


@dataclass(eq=False)
class Backend:
    """A RunPod backend as the service runs it.

    Attributes:
        id: its id in ``ListBackends`` (0, 1, ... in configuration order).
        name: its name in the configuration (also its title).
        settings: its settings.
        orch: the orchestrator driving its endpoint.
        catalog: the models its workers offer (persisted; None before the first discovery).
        features: the feature flags its workers' SwarmUI reported (defaults before that).
        generations: generations done through the service.
        gpu_seconds: GPU-seconds those generations kept a worker (boot for cold ones, plus
            the time on the worker).
        last_cold_start_s: the last measured cold start, if any.
        discovery_due: a model discovery is scheduled (AutoRefresh at start) and has not
            ended yet.
    """

    id: int
    name: str
    settings: Settings
    orch: Orchestrator
    catalog: ModelCatalog | None = None
    features: tuple[str, ...] = DEFAULT_FEATURES
    generations: int = 0
    gpu_seconds: float = 0.0
    last_cold_start_s: float | None = None
    discovery_due: bool = False
    _refreshing: anyio.Lock = field(default_factory=anyio.Lock)

    def __repr__(self) -> str:
        return f"Backend(id={self.id}, name={self.name!r}, endpoint_id={self.endpoint_id!r})"

    @property
    def endpoint_id(self) -> str:
        """The RunPod endpoint id."""
        return self.settings.endpoint_id or ""

    @property
    def cost_usd(self) -> float:
        """What the service's generations cost so far, at GpuPricePerHour."""
        return self.gpu_seconds * self.settings.gpu_price_per_hour / 3600

    def has_model(self, name: str) -> bool:
        """Whether the backend's workers offer ``name`` (with or without extension)."""
        return self.catalog is not None and self.catalog.has(name)

    def count(self, result: GenerationResult) -> None:
        """Count one generation's result into the backend's figures."""
        self.generations += 1
        self.gpu_seconds += result.gpu_seconds
        if result.cold_start:
            self.last_cold_start_s = result.timings.startup

    async def refresh(self, registry: ModelRegistry, *, user: str | None) -> ModelCatalog:
        """Hold a worker, discover its models and features, persist them, give it back."""
        async with self._refreshing, self.orch.hold_worker(user=user) as swarm:
            catalog = await discover_models(swarm, self.endpoint_id)
            backends = await swarm.list_backends()
        features = sorted(
            {f for b in backends.values() if b.status == "running" for f in b.features}
        )
        if features:
            self.features = tuple(features)
        self.catalog = await registry.save(catalog)
        log.info(
            "[RunPodServerless] backend %s: %d models discovered", self.name, self.catalog.count()
        )
        return self.catalog

    @property
    def loading(self) -> bool:
        """Whether its models are still unknown while a discovery is on its way.

        A SwarmUI's Swarm-API-Backend re-reads the remote backends (and their models) every
        second only while one says ``loading``; reporting ``running`` before the models are
        known would leave it with an empty model list.
        """
        return self.catalog is None and (self.discovery_due or self._refreshing.locked())

    def list_backends_entry(self) -> dict[str, Any]:
        """Its ``ListBackends`` entry: ``loading`` while its models are being discovered, then
        ``running`` — even while its workers are cold (they wake for a generation)."""
        return {
            "type": BACKEND_TYPE,
            "status": "loading" if self.loading else "running",
            "id": self.id,
            "settings": {"EndpointId": self.endpoint_id},
            "modcount": 0,
            "features": list(self.features),
            "enabled": True,
            "title": f"RunPod Serverless: {self.name}",
            "max_usages": self.settings.max_concurrent,
            "seconds_since_used": 0,
            "time_since_used": "Never",
            "can_load_models": True,
            "current_model": None,
        }

    def status_entry(self) -> Mapping[str, Any]:
        """Its ``GetStatus`` entry (the seed's fields, then what users also need)."""
        status = self.orch.status()
        return {
            "id": self.id,
            "title": self.name,
            "status": "RUNNING",
            "endpoint_id": self.endpoint_id,
            "model_count": self.catalog.count() if self.catalog is not None else 0,
            "auto_refresh": self.settings.auto_refresh,
            "max_concurrent": self.settings.max_concurrent,
            "protocol": status.protocol,
            "warm_workers": status.warm,
            "busy_workers": status.busy,
            "booting_workers": status.booting,
            "queue_depth": status.queued + status.waiting_for_worker,
            "in_flight": status.in_flight,
            "idle_window_s": round(status.idle_window_s, 1),
            "last_cold_start_s": (
                round(self.last_cold_start_s, 1) if self.last_cold_start_s is not None else None
            ),
            "generations": self.generations,
            "gpu_seconds": round(self.gpu_seconds, 1),
            "cost_usd": round(self.cost_usd, 4),
        }

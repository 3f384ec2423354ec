"""Models: what an endpoint's workers offer, kept per endpoint so restarts need no worker.

Built to specs/swarmui-api.md §6 (SwarmSwarmBackend's discovery), §5.1 (``ListModels`` and the
model object) and §8.4 (the RunPod extension's model refresh):

- :func:`discover_models` asks one worker's SwarmUI for every model subtype, in parallel, as
  SwarmSwarmBackend does, and keeps whole model objects (copied, ``local: false``).
- :class:`ModelCatalog` holds them and answers ``ListModels`` itself (:meth:`ModelCatalog.listing`)
  with SwarmUI's path, depth, folder and sort rules.
- :class:`ModelRegistry` persists one catalog per endpoint in SQLite, so a restarted service lists
  models without waking a worker.
- :func:`refresh_models` is the only thing here that wakes a worker: it holds one through the
  orchestrator, discovers, saves and gives the worker back.

The service (``swarmpod serve``) is its user; it is a package of its own, importable without the
service's extra, so an embedder can discover and list an endpoint's models too. One job per
module: :mod:`._objects` (model objects), :mod:`._listing` (``ListModels`` rules),
:mod:`._catalog`, :mod:`._registry` (persistence), :mod:`._discovery`.

>>> catalog = ModelCatalog("ep", {"LoRA": ({"name": "style/ink.safetensors"},)}, None)
>>> catalog.has("style/ink", "LoRA"), catalog.count()
(True, 1)
>>> catalog.listing("LoRA")
{'folders': ['style'], 'files': []}
"""

from ._catalog import ModelCatalog as ModelCatalog
from ._discovery import discover_models as discover_models
from ._discovery import refresh_models as refresh_models
from ._listing import SORT_MODES as SORT_MODES
from ._listing import SUBTYPES as SUBTYPES
from ._objects import remote_model as remote_model
from ._registry import ModelRegistry as ModelRegistry

__all__ = [
    "SORT_MODES",
    "SUBTYPES",
    "ModelCatalog",
    "ModelRegistry",
    "discover_models",
    "refresh_models",
    "remote_model",
]

"""Model routes: ``ListModels``, ``DescribeModel``, ``ListLoadedModels``, ``SelectModel``, and
``TriggerRefresh`` / ``ListT2IParams`` (specs/swarmui-api.md §5.1, §5.2)."""

from __future__ import annotations

from typing import Any, Final

import anyio
from aiohttp import web

from ._args import RouteError, arg_bool, arg_int, arg_str
from ._pipeline import Handler
from ._state import BACKEND_IDS, Session, SwarmState
from ._t2i import param_list

__all__ = ["MODEL_ROUTES"]


async def _list_models(
    state: SwarmState, session: Session | None, body: dict[str, Any], request: web.Request
) -> dict[str, Any]:
    path = arg_str(body, "path")
    depth = arg_int(body, "depth")
    subtype = arg_str(body, "subtype", "Stable-Diffusion")
    sort_by = arg_str(body, "sortBy", "Name")
    arg_bool(body, "allowRemote", True)
    sort_reverse = arg_bool(body, "sortReverse", False)
    data_images = arg_bool(body, "dataImages", False)
    return state.catalog.listing(
        path=path,
        depth=depth,
        subtype=subtype,
        sort_by=sort_by,
        sort_reverse=sort_reverse,
        data_images=data_images,
        loaded=state.current_model,
    )


async def _describe_model(
    state: SwarmState, session: Session | None, body: dict[str, Any], request: web.Request
) -> dict[str, Any]:
    name = arg_str(body, "modelName")
    subtype = arg_str(body, "subtype", "Stable-Diffusion")
    catalog = state.catalog
    model = catalog.find_exact(name, subtype)
    if model is None:
        raise RouteError("Model not found.")
    loaded = model.name == state.current_model
    return {"model": catalog.model_object(model, loaded=loaded, data_images=False)}


async def _list_loaded_models(
    state: SwarmState, session: Session | None, body: dict[str, Any], request: web.Request
) -> dict[str, Any]:
    catalog = state.catalog
    current = state.current_model
    model = catalog.find_exact(current) if current else None
    loaded = [] if model is None else [catalog.model_object(model, loaded=True, data_images=False)]
    return {"models": loaded}


async def _select_model(
    state: SwarmState, session: Session | None, body: dict[str, Any], request: web.Request
) -> dict[str, Any]:
    assert session is not None
    name = arg_str(body, "model")
    backend_id = arg_str(body, "backendId", "")
    model = state.catalog.find_exact(name)
    if model is None or backend_id not in ("", *BACKEND_IDS):
        raise RouteError("Model not found.")
    session.loading_models += 1
    state.model_loads_started += 1
    state.model_loads_in_flight += 1
    state.notify_activity()
    try:
        async with state.model_lock:
            await anyio.sleep(state.config.model_load_s)
            if state.faults.take("model_load_failure"):
                raise RouteError("Model failed to load.")
            state.current_model = model.name
    finally:
        session.loading_models -= 1
        state.model_loads_in_flight -= 1
        state.last_activity_at = anyio.current_time()
        state.notify_activity()
    return {"success": True}


async def _trigger_refresh(
    state: SwarmState, session: Session | None, body: dict[str, Any], request: web.Request
) -> dict[str, Any]:
    arg_bool(body, "strong", True)
    catalog = state.catalog
    models = {
        subtype: [model.name for model in catalog.of(subtype)]
        for subtype in ("Stable-Diffusion", "VAE", "LoRA")
    }
    return {
        "list": param_list(),
        "groups": [],
        "models": models,
        "model_compat_classes": {},
        "model_classes": {},
        "wildcards": [],
        "param_edits": None,
    }


MODEL_ROUTES: Final[dict[str, Handler]] = {
    "listmodels": _list_models,
    "describemodel": _describe_model,
    "listloadedmodels": _list_loaded_models,
    "selectmodel": _select_model,
    "triggerrefresh": _trigger_refresh,
    "listt2iparams": _trigger_refresh,
}
"""The model routes by lower-case name."""

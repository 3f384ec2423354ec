"""The routes: the seed extension's (``GetStatus``, ``RefreshModels``), API keys, prewarm, and
the SwarmUI-compatible facade a real SwarmUI's Swarm-API-Backend calls (swarmui-api.md §6).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import anyio
import anyio.abc

from .._events import Stage
from .._progress import ProgressEvent
from ..accounts import permissions_of
from ..errors import OrchestratorError
from ..models import SUBTYPES, ModelCatalog
from ..secrets import Secret
from ._backends import Backend
from ._envelope import failure, param_bool, param_int, param_str
from ._pipeline import Call, Route

__all__ = ["ROUTES", "SEED_ROUTES", "route_table"]

log = logging.getLogger("swarmpod.service")

RUNPOD: Final = "use_runpod_serverless"
_KEY_TYPE: Final = "runpod_api"
# Keys of a generation request that are SwarmUI's or the facade's, never T2I parameters.
_NOT_PARAMS: Final = frozenset(
    {
        "session_id",
        "images",
        "exactbackendid",
        "forwardswarmdata",
        "forwardrawbackenddata",
        "presets",
    }
)


# --- sessions, backends, models -------------------------------------------------------------


async def get_new_session(call: Call) -> Mapping[str, Any]:
    """``GetNewSession``: a session bound to the calling user."""
    session = call.service.sessions.new(call.user.name)
    return {
        "session_id": session.id,
        "user_id": call.user.name,
        "output_append_user": True,
        "version": call.service.version,
        "server_id": call.service.server_id,
        "permissions": list(permissions_of(call.user.role)),
    }


async def list_backends(call: Call) -> Mapping[str, Any]:
    """``ListBackends``: one backend per configured RunPod backend, ``loading`` while its
    models are being discovered, then ``running`` (even cold)."""
    return {str(backend.id): backend.list_backends_entry() for backend in call.service.backends}


async def list_models(call: Call) -> Mapping[str, Any]:
    """``ListModels``: the discovered models of every backend, as full model objects."""
    body = call.body
    path = param_str(body, "path")
    depth = param_int(body, "depth")
    subtype = param_str(body, "subtype", "Stable-Diffusion")
    sort_by = param_str(body, "sortBy", "Name")
    sort_reverse = param_bool(body, "sortReverse", False)
    catalog = _merged_catalog(call.service.backends)
    try:
        return catalog.listing(
            subtype, path=path, depth=depth, sort_by=sort_by, sort_reverse=sort_reverse
        )
    except ValueError as exc:
        raise failure(str(exc)) from None


async def describe_model(call: Call) -> Mapping[str, Any]:
    """``DescribeModel``: one model object, found with or without its extension."""
    name = param_str(call.body, "modelName")
    subtype = param_str(call.body, "subtype", "Stable-Diffusion")
    for model in _merged_catalog(call.service.backends).models.get(subtype, ()):
        if str(model.get("name")) in (name, f"{name}.safetensors"):
            return {"model": model}
    raise failure("Model not found.")


async def select_model(call: Call) -> Mapping[str, Any]:
    """``SelectModel``: accepted when a backend offers it; loaded by the generation itself
    (a cold worker is not woken just to load a model).

    Like SwarmUI (``ModelsAPI.SelectModelInternal``): an unknown model is ``Model not
    found.``; a ``backendId`` that names no running backend offering it is ``Model failed to
    load.`` (``LoadModelOnAll`` found no backend through the filter).
    """
    model = param_str(call.body, "model")
    backends = call.service.backends
    if not any(backend.has_model(model) for backend in backends):
        raise failure("Model not found.")
    backend_id = call.body.get("backendId")
    if backend_id is not None:
        backends = [b for b in backends if str(b.id) == str(backend_id)]
        if not any(b.has_model(model) and not b.loading for b in backends):
            raise failure("Model failed to load.")
    assert call.session is not None
    call.session.selected_model = model
    return {"success": True}


async def trigger_refresh(call: Call) -> Mapping[str, Any]:
    """``TriggerRefresh``: re-read the stored catalogs (never wakes a worker; RefreshModels
    does), answered in ``ListT2IParams``' shape."""
    service = call.service
    await service.reload_catalogs()
    catalog = _merged_catalog(service.backends)
    models = {
        subtype: [str(m.get("name")) for m in catalog.models.get(subtype, ())]
        for subtype in SUBTYPES
    }
    return {"list": [], "groups": [], "models": models, "wildcards": [], "param_edits": None}


async def free_backend_memory(call: Call) -> Mapping[str, Any]:
    """``FreeBackendMemory``: nothing stays loaded between leases; every backend counts."""
    param_bool(call.body, "system_ram", False)
    return {"result": True, "count": len(call.service.backends)}


async def get_current_status(call: Call) -> Mapping[str, Any]:
    """``GetCurrentStatus``: this session's counters and the backends' summary."""
    return _current_status(call, live=len(call.session.running) if call.session else 0)


async def interrupt_all(call: Call) -> Mapping[str, Any]:
    """``InterruptAll``: cancel this session's generations (or all the user's); each releases
    its worker."""
    other_sessions = param_bool(call.body, "other_sessions", False)
    sessions = (
        call.service.sessions.of_user(call.user.name)
        if other_sessions
        else [call.session]
        if call.session
        else []
    )
    for session in sessions:
        session.interrupt()
    return {"success": True}


# --- generation -------------------------------------------------------------------------------


async def generate_http(call: Call) -> Mapping[str, Any]:
    """``GenerateText2Image``: generate on a RunPod backend; images as data URLs."""
    images, backend, params = _generation_request(call)
    assert call.session is not None
    result = None
    with anyio.CancelScope() as scope:
        call.session.running.add(scope)
        try:
            result = await backend.orch.generate(params, images=images, user=call.user.name)
        except OrchestratorError as exc:
            raise failure(str(exc)) from None
        finally:
            call.session.running.discard(scope)
    if result is None:
        raise failure("Generation session interrupted.")
    backend.count(result)
    return {"images": [_data_url(image.mime, image.data) for image in result.images]}


async def generate_ws(call: Call) -> None:
    """``GenerateText2ImageWS``: status and ``gen_progress`` while the worker wakes and
    generates, then one flat ``image`` message per image, then SwarmUI's closing messages.

    A client that closes its socket (or whose socket breaks) mid-generation ends the
    generation, as ``InterruptAll`` would: its worker is given back."""
    ws = call.ws
    assert ws is not None and call.session is not None
    session = call.session
    images, backend, params = _generation_request(call)
    forward_data = param_bool(call.body, "forwardswarmdata", False)
    request_id = str(call.service.next_request_id())
    send, receive = anyio.create_memory_object_stream[dict[str, Any]](256)
    generation = anyio.CancelScope()
    client = _WebSocketClient(generation)

    def on_progress(event: ProgressEvent) -> None:
        message = _progress_message(event, request_id, call)
        if message is not None:
            # A slow client may miss a progress message, never an image.
            with contextlib.suppress(anyio.WouldBlock):
                send.send_nowait(message)

    async def pump() -> None:
        async with receive:
            async for message in receive:
                if not client.gone:
                    try:
                        await ws.send_json(message)
                    except (ConnectionError, RuntimeError):  # the socket broke
                        client.left()

    async def watch(*, task_status: anyio.abc.TaskStatus[anyio.CancelScope]) -> None:
        with anyio.CancelScope() as watching:
            task_status.started(watching)
            async for _ in ws:  # the client sends nothing more; its close ends the loop
                pass
            client.left()

    result = None
    error: str | None = None
    async with send, anyio.create_task_group() as tasks:
        tasks.start_soon(pump)
        watching = await tasks.start(watch)
        await send.send(_current_status(call, live=1, waiting_backends=1))
        with generation:
            session.running.add(generation)
            try:
                result = await backend.orch.generate(
                    params, images=images, user=call.user.name, on_progress=on_progress
                )
            except OrchestratorError as exc:
                error = str(exc)
            finally:
                session.running.discard(generation)
        client.finished = True
        if result is None and error is None:
            error = "Generation session interrupted."
        if result is not None:
            backend.count(result)
            used = sorted(params)
            for image in result.images:
                if forward_data:
                    await send.send({"raw_swarm_data": {"params_used": used}})
                await send.send(
                    {
                        "image": _data_url(image.mime, image.data),
                        "batch_index": str(image.batch_index),
                        "request_id": request_id,
                        "metadata": json.dumps(image.metadata) if image.metadata else None,
                    }
                )
            await send.send(_current_status(call, live=0))
            await send.send({"keep_alive": True})
            await send.send({"discard_indices": []})
        else:
            await send.send({"error": error})
        await send.send({"socket_intention": "close"})
        await send.aclose()
        watching.cancel()


@dataclass
class _WebSocketClient:
    """Whether the client of a WebSocket generation is still there."""

    generation: anyio.CancelScope
    gone: bool = False
    finished: bool = False

    def left(self) -> None:
        """The client closed or broke its socket: end its generation (if still running)."""
        if self.gone:
            return
        self.gone = True
        if not self.finished:
            log.info("[RunPodServerless] a client left its WebSocket mid-generation; ended it")
            self.generation.cancel()


def _generation_request(call: Call) -> tuple[int, Backend, dict[str, Any]]:
    body = call.body
    images = param_int(body, "images")  # its range, and every T2I number: the engine checks
    params = {key: value for key, value in body.items() if key not in _NOT_PARAMS}
    session = call.session
    if "model" not in params and session is not None and session.selected_model:
        params["model"] = session.selected_model
    return images, _backend_for(call, params), params


def _backend_for(call: Call, params: Mapping[str, Any]) -> Backend:
    backends = call.service.backends
    if not backends:
        raise failure("No backends available!")
    if "exactbackendid" in call.body:
        wanted = param_int(call.body, "exactbackendid")
        for backend in backends:
            if backend.id == wanted:
                return backend
        raise failure(f"No backend with id {wanted}.")
    model = params.get("model")
    if isinstance(model, str):
        for backend in backends:
            if backend.has_model(model):
                return backend
    return backends[0]


def _progress_message(event: ProgressEvent, request_id: str, call: Call) -> dict[str, Any] | None:
    if event.stage is Stage.GENERATING and event.percent is not None:
        index = event.detail.get("batch_index", 0)
        return {
            "gen_progress": {
                "batch_index": str(index),
                "request_id": request_id,
                "overall_percent": round(event.percent, 4),
                "current_percent": round(event.percent, 4),
            }
        }
    if event.stage in (Stage.QUEUED, Stage.BOOTING, Stage.READY):
        message = _current_status(call, live=1, waiting_backends=1)
        # The worker's id would give away its RunPod proxy URL: clients never see it.
        ready = event.stage is Stage.READY
        message["backend_status"]["message"] = "a worker is ready" if ready else event.message
        return message
    return None


def _backend_status(backends: Sequence[Backend]) -> dict[str, Any]:
    """SwarmUI's summary over the backends: empty, loading, some_loading or running."""
    loading = sum(backend.loading for backend in backends)
    if not backends:
        status, css = "empty", "error"
    elif loading == len(backends):
        status, css = "loading", "soft"
    elif loading:
        status, css = "some_loading", "warn"
    else:
        status, css = "running", ""
    return {"status": status, "class": css, "message": "", "any_loading": loading > 0}


def _current_status(call: Call, *, live: int, waiting_backends: int = 0) -> dict[str, Any]:
    features = sorted(
        {feature for backend in call.service.backends for feature in backend.features}
    )
    return {
        "status": {
            "waiting_gens": 0,
            "loading_models": 0,
            "waiting_backends": waiting_backends,
            "live_gens": live,
        },
        "backend_status": _backend_status(call.service.backends),
        "supported_features": features,
    }


def _data_url(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _merged_catalog(backends: list[Backend]) -> ModelCatalog:
    merged: dict[str, dict[str, dict[str, Any]]] = {subtype: {} for subtype in SUBTYPES}
    for backend in backends:
        if backend.catalog is None:
            continue
        for subtype, models in backend.catalog.models.items():
            for model in models:
                merged.setdefault(subtype, {}).setdefault(str(model.get("name")), model)
    return ModelCatalog(
        endpoint_id="*",
        models={subtype: tuple(models.values()) for subtype, models in merged.items()},
        refreshed_at=None,
    )


# --- the seed's routes, API keys, prewarm --------------------------------------------------------


async def get_status(call: Call) -> Mapping[str, Any]:
    """``GetStatus`` (the seed's): every backend with its id, title, status, endpoint, model
    count, settings, and its warm workers, queue, last cold start and cost so far."""
    backends = [backend.status_entry() for backend in call.service.backends]
    return {"success": True, "total_backends": len(backends), "backends": backends}


async def refresh_models(call: Call) -> Mapping[str, Any]:
    """``RefreshModels`` (the seed's): wake a worker per backend (the backend's key, else the
    caller's), discover its models, give the worker back."""
    service = call.service
    if not service.backends:
        return {"success": False, "error": "No RunPod backends are currently running"}
    refreshed = failed = 0
    for backend in service.backends:
        try:
            await backend.refresh(service.registry, user=call.user.name)
        except OrchestratorError as exc:
            log.warning("[RunPodServerless] refreshing models of %s failed: %s", backend.name, exc)
            failed += 1
        else:
            refreshed += 1
    return {
        "success": True,
        "refreshed": refreshed,
        "failed": failed,
        "message": f"Refreshed {refreshed} RunPod backend(s), {failed} failed.",
    }


async def prewarm(call: Call) -> Mapping[str, Any]:
    """``Prewarm``: wake workers ahead of demand (e.g. when a user opens the UI)."""
    workers = param_int(call.body, "workers", 1)
    if not 1 <= workers <= 100:
        raise failure("Invalid value for parameter workers: must be between 1 and 100")
    wanted = param_int(call.body, "backend", -1)
    requested = 0
    for backend in call.service.backends:
        if wanted in (-1, backend.id):
            try:
                requested += await backend.orch.prewarm(workers, user=call.user.name)
            except OrchestratorError as exc:
                raise failure(str(exc)) from None
    return {"success": True, "requested": requested}


async def set_api_key(call: Call) -> Mapping[str, Any]:
    """``SetAPIKey {keyType: "runpod_api", key}``: the user's own RunPod key, encrypted at
    rest; ``key: "none"`` deletes it."""
    key_type = param_str(call.body, "keyType")
    key = param_str(call.body, "key")
    if key_type != _KEY_TYPE:
        raise failure(f"Invalid key type '{key_type}'; this server takes '{_KEY_TYPE}'.")
    if any(char.isspace() for char in key.strip()) or not key.strip():
        raise failure("The key must be one word without spaces.")
    accounts = call.service.accounts
    stored = None if key.strip() == "none" else Secret(key.strip())
    await accounts.set_runpod_key(call.user.name, stored)
    return {"success": True}


async def get_api_key_status(call: Call) -> Mapping[str, Any]:
    """``GetAPIKeyStatus {keyType}``: when the key was last set, never the key."""
    key_type = param_str(call.body, "keyType")
    if key_type != _KEY_TYPE:
        raise failure(f"Invalid key type '{key_type}'; this server takes '{_KEY_TYPE}'.")
    return {"status": await call.service.accounts.runpod_key_status(call.user.name)}


_GENERATE: Final = ("basic_image_generation", RUNPOD)
_BY_NAME: Final[Mapping[str, Route]] = {
    "GetNewSession": Route(get_new_session, session=False),
    "ListBackends": Route(list_backends, ("view_backends_list",)),
    "ListModels": Route(list_models, ("fundamental_model_access",)),
    "DescribeModel": Route(describe_model, ("fundamental_model_access",)),
    "SelectModel": Route(select_model, ("load_models_now", RUNPOD)),
    "GenerateText2Image": Route(generate_http, _GENERATE),
    "GenerateText2ImageWS": Route(generate_ws, _GENERATE, websocket=True),
    "InterruptAll": Route(interrupt_all, ("basic_image_generation",)),
    "GetCurrentStatus": Route(get_current_status, ("fundamental_generate_tab_access",)),
    "TriggerRefresh": Route(trigger_refresh, ("fundamental_generate_tab_access",)),
    "FreeBackendMemory": Route(free_backend_memory, ("control_mem_clean",)),
    "SetAPIKey": Route(set_api_key, ("edit_user_settings",)),
    "GetAPIKeyStatus": Route(get_api_key_status, ("edit_user_settings",)),
    # The seed's routes under their real SwarmUI names (swarmui-api.md §8.1):
    "GetStatus": Route(get_status, (RUNPOD,), session=None, get=True),
    "RefreshModels": Route(refresh_models, (RUNPOD,), session=None, get=True),
    "Prewarm": Route(prewarm, (RUNPOD,), session=None),
}
_SEED: Final = ("GetStatus", "RefreshModels", "Prewarm")

ROUTES: Final[Mapping[str, Route]] = {name.lower(): route for name, route in _BY_NAME.items()}
"""Every ``/API/<name>`` route (names lowercased: SwarmUI's routes are case-insensitive)."""

SEED_ROUTES: Final[Mapping[str, Route]] = {name.lower(): _BY_NAME[name] for name in _SEED}
"""The ``/API/RunPod/<name>`` routes, as the seed's README documents them (GET accepted)."""


def route_table() -> list[tuple[str, str, tuple[str, ...]]]:
    """(path, methods, permissions) of every route, for the docs and the closing note."""
    rows = [
        (f"/API/{name}", "WS" if route.websocket else "POST", route.permissions)
        for name, route in _BY_NAME.items()
    ]
    rows += [(f"/API/RunPod/{name}", "GET, POST", _BY_NAME[name].permissions) for name in _SEED]
    return rows

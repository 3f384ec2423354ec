"""Value objects returned by the SwarmUI client (specs/swarmui-api.md §2.1, §3.2, §3.4, §5)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BackendInfo",
    "GeneratedImage",
    "GenerationEvent",
    "ImageReady",
    "ModelListing",
    "Progress",
    "SessionInfo",
    "StatusUpdate",
]


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _strs(value: Any) -> tuple[str, ...]:
    if isinstance(value, list | tuple):
        return tuple(str(item) for item in value)
    return ()


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A SwarmUI session as ``GetNewSession`` hands it out (§2.1).

    Attributes:
        session_id: the opaque session id sent with every later call.
        user_id: the SwarmUI user the session is bound to (``local`` without accounts).
        server_id: the server's per-process GUID (changes on every restart).
        version: SwarmUI's version string.
        permissions: the user's permission flags.
        raw: the whole answer, as SwarmUI sent it.
    """

    session_id: str
    user_id: str
    server_id: str
    version: str
    permissions: tuple[str, ...]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> SessionInfo:
        """Build from a ``GetNewSession`` answer (which must carry ``session_id``)."""
        return cls(
            session_id=str(body["session_id"]),
            user_id=str(body.get("user_id", "")),
            server_id=str(body.get("server_id", "")),
            version=str(body.get("version", "")),
            permissions=_strs(body.get("permissions")),
            raw=body,
        )


@dataclass(frozen=True, slots=True)
class ModelListing:
    """The answer of ``ListModels`` (§5.1): folder names and whole model objects.

    Attributes:
        folders: folder paths below the requested path (``"sub"``, ``"sub/deeper"``).
        files: the model objects exactly as SwarmUI sent them (``name`` includes the extension).
    """

    folders: tuple[str, ...]
    files: tuple[dict[str, Any], ...]

    @property
    def names(self) -> tuple[str, ...]:
        """The models' names (relative paths including the extension)."""
        return tuple(str(model.get("name", "")) for model in self.files)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> ModelListing:
        """Build from a ``ListModels`` answer."""
        files = body.get("files")
        return cls(
            folders=_strs(body.get("folders")),
            files=tuple(f for f in files if isinstance(f, dict)) if isinstance(files, list) else (),
        )


@dataclass(frozen=True, slots=True)
class BackendInfo:
    """One entry of ``ListBackends`` (§5.3).

    Attributes:
        id: the backend id (the key of the listing, as an int).
        type: the backend type id (``comfyui_selfstart``, ...).
        status: lowercase status: ``disabled | errored | waiting | loading | idle | running``.
        title: the human title.
        features: the feature flags the backend supports.
        can_load_models: whether ``SelectModel`` may load models on it.
        max_usages: how many generations it runs at once.
        current_model: the loaded model (only with ``full_data``), or None.
        enabled: whether the backend is enabled.
        raw: the entry as SwarmUI sent it.
    """

    id: int
    type: str
    status: str
    title: str
    features: tuple[str, ...]
    can_load_models: bool
    max_usages: int
    current_model: str | None
    enabled: bool
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def is_loading(self) -> bool:
        """Whether the backend is still starting (SwarmSwarmBackend waits while any is)."""
        return self.status in ("loading", "waiting")

    @classmethod
    def from_json(cls, key: str, entry: dict[str, Any]) -> BackendInfo:
        """Build from one ``ListBackends`` entry and its key."""
        current = entry.get("current_model")
        return cls(
            id=_int(entry.get("id", key)),
            type=str(entry.get("type", "")),
            status=str(entry.get("status", "")),
            title=str(entry.get("title", "")),
            features=_strs(entry.get("features")),
            can_load_models=bool(entry.get("can_load_models", False)),
            max_usages=_int(entry.get("max_usages"), 1),
            current_model=None if current is None else str(current),
            enabled=bool(entry.get("enabled", True)),
            raw=entry,
        )


@dataclass(frozen=True, slots=True)
class GeneratedImage:
    """One image of a generation, decoded and checked.

    Attributes:
        data: the encoded image bytes (normally PNG).
        mime: the MIME type (``image/png``).
        width: width in pixels, read from the image.
        height: height in pixels, read from the image.
        seed: the seed that made it, when known.
        batch_index: its index in the request (0-based).
        metadata: SwarmUI's metadata (``{"sui_image_params": {...}}``) when it sent any.
    """

    data: bytes = field(repr=False)
    mime: str
    width: int
    height: int
    seed: int | None
    batch_index: int
    metadata: dict[str, Any] | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Progress:
    """A ``gen_progress`` message (§3.2): sampling progress of one image.

    Attributes:
        batch_index: the image's index in the request.
        overall: progress of the whole request in [0, 1].
        current: progress of this image in [0, 1].
        preview: a small JPEG preview, when SwarmUI sent one.
    """

    batch_index: int
    overall: float
    current: float
    preview: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A status object streamed during a WS generation (§3.4).

    Attributes:
        waiting_gens: this session's generations waiting for a backend.
        loading_models: this session's model loads in progress.
        waiting_backends: this session's requests waiting for a backend to start.
        live_gens: this session's generations running now.
        backend_status: the summary over all backends (``running``, ``loading``, ...).
        backend_message: SwarmUI's human text for that summary.
        any_loading: whether any backend is still loading.
        raw: the message as SwarmUI sent it.
    """

    waiting_gens: int
    loading_models: int
    waiting_backends: int
    live_gens: int
    backend_status: str
    backend_message: str
    any_loading: bool
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def model_loading(self) -> bool:
        """Whether the worker is loading a model for this session right now."""
        return self.loading_models > 0

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> StatusUpdate:
        """Build from a ``GetCurrentStatus``-shaped object."""
        status = body.get("status")
        counters = status if isinstance(status, dict) else {}
        backend = body.get("backend_status")
        summary = backend if isinstance(backend, dict) else {}
        return cls(
            waiting_gens=_int(counters.get("waiting_gens")),
            loading_models=_int(counters.get("loading_models")),
            waiting_backends=_int(counters.get("waiting_backends")),
            live_gens=_int(counters.get("live_gens")),
            backend_status=str(summary.get("status", "")),
            backend_message=str(summary.get("message", "")),
            any_loading=bool(summary.get("any_loading", False)),
            raw=body,
        )


@dataclass(frozen=True, slots=True)
class ImageReady:
    """An image of the request has arrived (delivered before the generation returns).

    Attributes:
        batch_index: the image's index in the request.
    """

    batch_index: int


@dataclass(frozen=True, slots=True)
class RequestSent:
    """The generation request went out to SwarmUI (WS: its first message was written; HTTP:
    the POST is being sent).

    Attributes:
        transport: ``"ws"`` or ``"http"``.
    """

    transport: str


GenerationEvent = Progress | StatusUpdate | ImageReady | RequestSent
"""What ``SwarmUIClient.generate`` reports to its ``on_event`` callback."""

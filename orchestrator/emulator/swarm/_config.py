"""What a fake SwarmUI serves (models, timings, auth) and the faults it is scripted to inject."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

__all__ = ["DEFAULT_MODELS", "ModelSpec", "SwarmConfig", "SwarmFaults"]


@dataclass(frozen=True)
class ModelSpec:
    """One model file the fake lists (specs/swarmui-api.md §5.1).

    >>> ModelSpec("Sub/x.safetensors", architecture="stable-diffusion-v1",
    ...           standard_width=512, standard_height=512).display_title
    'x'

    Attributes:
        name: the relative path including the extension, e.g.
            ``OfficialStableDiffusion/sd_xl_base_1.0.safetensors``.
        subtype: ``Stable-Diffusion``, ``VAE``, ``LoRA``, ``Embedding``, ``ControlNet``, ...
        architecture: the model class id, e.g. ``stable-diffusion-xl-v1-base``.
        standard_width: the model's native width.
        standard_height: the model's native height.
        title: the display title (default: the file name without folder and extension).
    """

    name: str
    subtype: str = "Stable-Diffusion"
    architecture: str = "stable-diffusion-xl-v1-base"
    standard_width: int = 1024
    standard_height: int = 1024
    title: str | None = None

    @property
    def display_title(self) -> str:
        """``title``, or the file name without folders and extension."""
        if self.title is not None:
            return self.title
        return self.name.rsplit("/", 1)[-1].rsplit(".", 1)[0]


DEFAULT_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        "OfficialStableDiffusion/sd_xl_base_1.0.safetensors",
        architecture="stable-diffusion-xl-v1-base",
        standard_width=1024,
        standard_height=1024,
        title="Stable Diffusion XL 1.0 Base",
    ),
    ModelSpec(
        "OfficialStableDiffusion/v1-5-pruned-emaonly.safetensors",
        architecture="stable-diffusion-v1",
        standard_width=512,
        standard_height=512,
        title="Stable Diffusion v1.5",
    ),
    ModelSpec(
        "dreamshaper_8.safetensors",
        architecture="stable-diffusion-v1",
        standard_width=512,
        standard_height=512,
    ),
    ModelSpec(
        "XL/Turbo/sdxl_turbo.safetensors",
        architecture="stable-diffusion-xl-v1-base",
        standard_width=512,
        standard_height=512,
    ),
    ModelSpec(
        "sdxl_vae.safetensors",
        subtype="VAE",
        architecture="stable-diffusion-xl-v1-vae",
        standard_width=1024,
        standard_height=1024,
    ),
    ModelSpec(
        "add_detail.safetensors",
        subtype="LoRA",
        architecture="stable-diffusion-v1/lora",
        standard_width=512,
        standard_height=512,
    ),
)
"""Four Stable-Diffusion models (SDXL 1024², SD1.5 512², nested folders), a VAE and a LoRA."""


@dataclass(frozen=True)
class SwarmConfig:
    """How a fake SwarmUI behaves. All times are loop seconds (virtual under looptime).

    >>> SwarmConfig(seconds_per_step=0.1).seconds_per_step
    0.1

    Attributes:
        models: the model files it lists and accepts.
        seconds_per_step: generating one image takes ``steps * seconds_per_step``.
        progress_updates: ``gen_progress`` messages sent per image.
        backend_load_s: the backend reports ``loading`` this long after ``start``.
        model_load_s: ``SelectModel`` or the first use of another model takes this long.
        required_authorization: when set, every request (API, WS upgrade, ``/View``) must
            carry exactly this ``Authorization`` header, else 401 text ``Unauthorized``. A
            gateway installed at run time (``FakeSwarmUI.set_gateway_token``) replaces it.
        max_usages: generations the backend runs at once.
        features: the backend's feature flags.
        role: the built-in role every user has (``owner``, ``admin``, ``poweruser``, ``user``,
            ``guest``); routes and parameters it lacks the permission for are refused (§7).
        permissions: an explicit permission-flag set that replaces the role's (``*`` = all).
        accounts_required: SwarmUI's ``AuthorizationRequired``: ``GetNewSession`` then needs a
            valid ``swarm_token`` cookie (see ``FakeSwarmUI.create_auth_token``).
        allow_localhost_bypass: SwarmUI's ``AllowLocalhostBypass`` (SwarmUI's default is true;
            the fake's is false because every test client is local): with accounts on, a
            request from 127.0.0.1/::1 without ``X-Forwarded-For`` is the ``local`` user.
        auth_bypass_ips: client IPs that skip ``required_authorization``.
        api_key_types: the key types ``SetAPIKey`` accepts (``runpod_api`` is added when
            ``runpod_extension`` is on).
        runpod_extension: also serve the RunPod Serverless extension's ``GetStatus`` and
            ``RefreshModels`` routes (§8), with one RunPod backend.
        runpod_endpoint_id: that backend's ``endpoint_id``.
        clock: the wall-clock date the server reports (output paths, ``GetAPIKeyStatus``);
            None uses 2026-01-01 12:00 plus the loop's seconds, so tests never read real time.
    """

    models: tuple[ModelSpec, ...] = DEFAULT_MODELS
    seconds_per_step: float = 0.05
    progress_updates: int = 4
    backend_load_s: float = 0.0
    model_load_s: float = 0.0
    required_authorization: str | None = None
    max_usages: int = 1
    features: tuple[str, ...] = (
        "comfyui",
        "refiners",
        "controlnet",
        "variation_seed",
        "folderslash",
    )
    role: str = "owner"
    permissions: tuple[str, ...] | None = None
    accounts_required: bool = False
    allow_localhost_bypass: bool = False
    auth_bypass_ips: tuple[str, ...] = ()
    api_key_types: tuple[str, ...] = ("stability_api", "civitai_api", "huggingface_api")
    runpod_extension: bool = False
    runpod_endpoint_id: str = "fake-endpoint"
    clock: Callable[[], datetime] | None = None


class SwarmFaults:
    """A mutable fault script; one instance may be shared by several fakes (an endpoint's workers).

    Each method arms a fault for the next ``times`` occurrences; whichever fake meets the
    occasion first consumes it.

    >>> faults = SwarmFaults()
    >>> faults.no_images(times=2)
    >>> faults.take("no_images"), faults.take("no_images"), faults.take("no_images")
    (True, True, False)
    """

    def __init__(self) -> None:
        self._armed: Counter[str] = Counter()
        self.error_text = "Something went wrong while generating images."
        self.slow_factor = 1.0
        self.latency_s: dict[str, float] = {}

    def __repr__(self) -> str:
        armed = {kind: n for kind, n in self._armed.items() if n > 0}
        return f"SwarmFaults({armed}, slow_factor={self.slow_factor})"

    def _arm(self, kind: str, times: int) -> None:
        if times < 0:
            raise ValueError("times must be >= 0")
        self._armed[kind] += times

    def take(self, kind: str) -> bool:
        """Consume one armed ``kind`` fault; return whether one was armed."""
        if self._armed[kind] <= 0:
            return False
        self._armed[kind] -= 1
        return True

    def pending(self, kind: str) -> int:
        """How many ``kind`` faults are still armed."""
        return self._armed[kind]

    def clear(self) -> None:
        """Disarm every fault and restore normal speed."""
        self._armed.clear()
        self.latency_s.clear()
        self.slow_factor = 1.0

    def invalid_session(self, times: int = 1) -> None:
        """The next session-checked calls answer ``invalid_session_id`` (a restarted worker)."""
        self._arm("invalid_session", times)

    def generation_error(self, text: str, times: int = 1) -> None:
        """The next generations fail with 200 ``{"error": text}`` (WS: an error message)."""
        self.error_text = text
        self._arm("generation_error", times)

    def no_images(self, times: int = 1) -> None:
        """The next generations end normally without images (``{"images": []}``)."""
        self._arm("no_images", times)

    def bad_base64(self, times: int = 1) -> None:
        """The next generations return an image data URL whose base64 is invalid."""
        self._arm("bad_base64", times)

    def hang_generation(self, times: int = 1) -> None:
        """The next generations never finish until interrupted or abandoned by the client."""
        self._arm("hang_generation", times)

    def drop_connection(self, times: int = 1) -> None:
        """The next generations die mid-way, like a worker that crashed: after their first
        progress step the connection is aborted (HTTP: no response at all; WS: the socket
        ends without a close frame)."""
        self._arm("drop_connection", times)

    def truncated_json(self, times: int = 1, route: str = "GenerateText2Image") -> None:
        """The next answers of ``route`` are JSON cut in half (HTTP: the body; the WS route
        ``GenerateText2ImageWS``: its next ``image`` message)."""
        self._arm(f"truncated_json:{route.lower()}", times)

    def latency(self, route: str, seconds: float, times: int = 1) -> None:
        """The next requests to ``route`` (an API route name, case-insensitive, or ``View``)
        wait ``seconds`` before they are handled (for WS routes: after the first message)."""
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        self.latency_s[route.lower()] = seconds
        self._arm(f"latency:{route.lower()}", times)

    def ignore_donotsave(self, times: int = 1) -> None:
        """The next generations save their images and return ``View/...`` paths anyway."""
        self._arm("ignore_donotsave", times)

    def model_load_failure(self, times: int = 1) -> None:
        """The next ``SelectModel`` calls answer ``{"error": "Model failed to load."}``."""
        self._arm("model_load_failure", times)

    def slow_generation(self, factor: float) -> None:
        """From now on, generations take ``factor`` times as long (1.0 restores)."""
        if factor <= 0:
            raise ValueError("factor must be > 0")
        self.slow_factor = factor

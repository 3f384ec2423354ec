"""Settings of one RunPod backend, and the timeouts value object.

Loaded in three layers, each overriding the one before: a TOML file, the environment
(``SWARMPOD_<NAME>``, plus ``RUNPOD_API_KEY`` and ``RUNPOD_ENDPOINT_ID``), then explicit
arguments (CLI flags). Every bad value is refused at load, naming the setting, where the value
came from and why::

    >>> Settings.load(overrides={"MaxConcurrent": "0"}, env={})
    Traceback (most recent call last):
    ...
    orchestrator.errors.SettingsError: Setting MaxConcurrent (from arguments): must be >= 1, got 0

TOML keys use the seed's names (``EndpointId``, ``MaxConcurrent``, ...); snake_case
(``max_concurrent``) is accepted too. Environment names are the snake_case name upper-cased
with the ``SWARMPOD_`` prefix (``SWARMPOD_MAX_CONCURRENT``).
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from .errors import SettingsError
from .runpod import DEFAULT_BASE_URL
from .secrets import Secret
from .store import DatabaseUrl

__all__ = ["DEFAULT_BASE_URL", "Settings", "Timeouts", "WorkerProtocolName"]

WorkerProtocolName = Literal["auto", "v1", "v2"]


@dataclass(frozen=True)
class Timeouts:
    """Every deadline of a generation, one field per phase, in seconds.

    >>> Timeouts(startup=90, generation=600).generation
    600

    Attributes:
        startup: from wake-up until the worker's SwarmUI answers (StartupTimeoutSec).
        generation: the SwarmUI generation itself (GenerationTimeoutSec), really enforced.
        request: one short HTTP call to RunPod or SwarmUI (not the generation).
        release: giving the worker back (cancel calls); runs shielded even after cancellation.
    """

    startup: float = 120.0
    generation: float = 300.0
    request: float = 30.0
    release: float = 30.0

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if not (isinstance(value, int | float) and value > 0 and math.isfinite(value)):
                raise SettingsError(
                    f"Timeouts.{item.name}", f"must be a finite number > 0, got {value!r}"
                )


# --- parsers: raw value (from TOML, env string or argument) -> typed value, or ValueError ----


def _parse_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in {"true", "1", "yes", "on"}:
        return True
    if isinstance(raw, str) and raw.strip().lower() in {"false", "0", "no", "off"}:
        return False
    raise ValueError(f"must be true or false, got {raw!r}")


def _parse_int(minimum: int, maximum: int | None = None) -> Callable[[Any], int]:
    def parse(raw: Any) -> int:
        if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
            raise ValueError(f"must be an integer, got {raw!r}")
        try:
            value = int(raw.strip()) if isinstance(raw, str) else int(raw)
        except (TypeError, ValueError):
            raise ValueError(f"must be an integer, got {raw!r}") from None
        if value < minimum:
            raise ValueError(f"must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise ValueError(f"must be <= {maximum}, got {value}")
        return value

    return parse


def _parse_seconds(
    *, allow_zero: bool, at_most: float = math.inf, why_at_most: str = ""
) -> Callable[[Any], float]:
    def parse(raw: Any) -> float:
        if isinstance(raw, bool):
            raise ValueError(f"must be a number of seconds, got {raw!r}")
        try:
            value = float(raw.strip()) if isinstance(raw, str) else float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"must be a number of seconds, got {raw!r}") from None
        if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
            bound = ">= 0" if allow_zero else "> 0"
            raise ValueError(f"must be a finite number {bound}, got {raw!r}")
        if value > at_most:
            raise ValueError(f"must be at most {at_most:g} s ({why_at_most}), got {raw!r}")
        return value

    return parse


GENERATION_TIMEOUT_MAX_S = 86_400.0
"""The longest GenerationTimeoutSec: a day. A worker held for a generation must stay within
RunPod's longest execution timeout (7 days) with its lease's hour of use and margins."""


def _parse_idle(raw: Any) -> float | Literal["auto"]:
    if isinstance(raw, str) and raw.strip().lower() == "auto":
        return "auto"
    return _parse_seconds(allow_zero=True)(raw)


def _parse_prewarm(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, str):
        rules = tuple(part.strip() for part in raw.split(";") if part.strip())
    elif isinstance(raw, list | tuple) and all(isinstance(item, str) for item in raw):
        rules = tuple(item.strip() for item in raw)
    else:
        raise ValueError(f"must be a list of rules like 'Mon-Fri 08:00-18:00 1', got {raw!r}")
    from .workers import PrewarmSchedule

    PrewarmSchedule.parse(rules)  # refuses a bad rule, naming it
    return rules


def _parse_state_file(raw: Any) -> str | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if not isinstance(raw, str | os.PathLike):
        raise ValueError(f"must be a file path or ':memory:', got {raw!r}")
    return os.fspath(raw).strip() if isinstance(raw, str) else os.fspath(raw)


def _parse_database_url(raw: Any) -> DatabaseUrl | None:
    if isinstance(raw, DatabaseUrl):
        return raw
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if not isinstance(raw, str):
        raise ValueError("must be a postgresql:// URL string")
    return DatabaseUrl(raw)  # its ValueError never repeats the URL (a password)


def _parse_heartbeat(raw: Any) -> float:
    value = _parse_seconds(allow_zero=False)(raw)
    if not 0.05 <= value <= 3600:
        raise ValueError(f"must be between 0.05 and 3600 seconds, got {raw!r}")
    return value


def _parse_price(raw: Any) -> float:
    return _parse_seconds(allow_zero=True)(raw)


_ENDPOINT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def _parse_endpoint_id(raw: Any) -> str | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if not isinstance(raw, str) or not _ENDPOINT_ID.match(raw.strip()):
        raise ValueError(f"must be a RunPod endpoint id (letters, digits, - or _), got {raw!r}")
    return raw.strip()


def _parse_key(raw: Any) -> Secret | None:
    if isinstance(raw, Secret):
        return raw or None
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise ValueError("must be a string")
    if any(ch.isspace() for ch in raw.strip()):
        raise ValueError("must not contain whitespace")
    return Secret(raw.strip()) if raw.strip() else None


def _parse_protocol(raw: Any) -> WorkerProtocolName:
    value = str(raw).strip().lower()
    if value == "auto":
        return "auto"
    if value == "v1":
        return "v1"
    if value == "v2":
        return "v2"
    raise ValueError(f"must be auto, v1 or v2, got {raw!r}")


def _parse_url(raw: Any) -> str:
    if not isinstance(raw, str):
        raise ValueError(f"must be a URL string, got {raw!r}")
    parts = urlsplit(raw.strip())
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError(f"must be an http(s) URL, got {raw!r}")
    return raw.strip().rstrip("/")


def _parse_transport(raw: Any) -> Literal["ws", "http"]:
    value = str(raw).strip().lower()
    if value == "ws":
        return "ws"
    if value == "http":
        return "http"
    raise ValueError(f"must be ws or http, got {raw!r}")


@dataclass(frozen=True)
class _Spec:
    name: str  # the seed's name, used in TOML and messages
    attr: str  # the Python attribute
    parse: Callable[[Any], Any]
    env: tuple[str, ...] = ()  # extra environment names, lowest precedence first


_SPECS: tuple[_Spec, ...] = (
    _Spec("EndpointId", "endpoint_id", _parse_endpoint_id, env=("RUNPOD_ENDPOINT_ID",)),
    _Spec("UseAsync", "use_async", _parse_bool),
    _Spec("MaxConcurrent", "max_concurrent", _parse_int(1, 10_000)),
    _Spec("PollIntervalMs", "poll_interval_ms", _parse_int(100, 600_000)),
    _Spec("StartupTimeoutSec", "startup_timeout_sec", _parse_seconds(allow_zero=False)),
    _Spec(
        "GenerationTimeoutSec",
        "generation_timeout_sec",
        _parse_seconds(
            allow_zero=False,
            at_most=GENERATION_TIMEOUT_MAX_S,
            why_at_most="a worker is held within RunPod's 7-day execution timeout",
        ),
    ),
    _Spec("RunPodApiKey", "runpod_api_key", _parse_key, env=("RUNPOD_API_KEY",)),
    _Spec("AutoRefresh", "auto_refresh", _parse_bool),
    _Spec("IdleTimeoutSec", "idle_timeout_sec", _parse_idle),
    _Spec("WorkerProtocol", "worker_protocol", _parse_protocol),
    _Spec("GpuPricePerHour", "gpu_price_per_hour", _parse_price),
    _Spec("RunPodBaseUrl", "runpod_base_url", _parse_url),
    _Spec("RequestTimeoutSec", "request_timeout_sec", _parse_seconds(allow_zero=False)),
    _Spec("ReleaseTimeoutSec", "release_timeout_sec", _parse_seconds(allow_zero=False)),
    _Spec("Transport", "transport", _parse_transport),
    _Spec("MaxWorkers", "max_workers", _parse_int(1, 1000)),
    _Spec("Prewarm", "prewarm", _parse_prewarm),
    _Spec("DailyGpuSecondsPerUser", "daily_gpu_seconds_per_user", _parse_seconds(allow_zero=True)),
    _Spec("StateFile", "state_file", _parse_state_file),
    _Spec("DatabaseUrl", "database_url", _parse_database_url),
    _Spec("ReplicaHeartbeatSec", "replica_heartbeat_sec", _parse_heartbeat),
    _Spec("EndpointIdleTimeoutSec", "endpoint_idle_timeout_sec", _parse_seconds(allow_zero=True)),
    _Spec("EndpointQueueDelaySec", "endpoint_queue_delay_sec", _parse_seconds(allow_zero=True)),
)
_BY_KEY: dict[str, _Spec] = {}
for _spec in _SPECS:
    _BY_KEY[_spec.name.lower()] = _spec
    _BY_KEY[_spec.attr] = _spec


def _env_name(spec: _Spec) -> str:
    return "SWARMPOD_" + spec.attr.upper()


_log = logging.getLogger("swarmpod.settings")
OTHER_ENV_NAMES = frozenset(
    {
        "SWARMPOD_MASTER_KEY",  # accounts: the master key of the encrypted RunPod keys
        "SWARMPOD_STATE_DIR",  # where the state file and the accounts live
        "SWARMPOD_EMULATOR_KEY",  # swarmpod emulator: the key it accepts
        "SWARMPOD_SDK_VENV",  # tests: the official SDK's environment
        "SWARMPOD_CORE_VENV",  # tests: the no-extras environment
    }
)
"""``SWARMPOD_*`` variables read elsewhere than in Settings (not reported as misspelt)."""
_reported_env: set[str] = set()


def _report_unknown_env(environ: Mapping[str, str]) -> None:
    """Warn (once per name) about ``SWARMPOD_*`` variables that nothing reads: a typo."""
    known = {_env_name(spec) for spec in _SPECS} | OTHER_ENV_NAMES
    for name in sorted(environ):
        if not name.startswith("SWARMPOD_") or name in known or name in _reported_env:
            continue
        _reported_env.add(name)
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.8)
        hint = (
            f"did you mean {close[0]}?"
            if close
            else "settings are SWARMPOD_<SNAKE_CASE_NAME>, e.g. SWARMPOD_MAX_CONCURRENT"
        )
        _log.warning("%s is not a swarmpod variable and is ignored; %s", name, hint)


@dataclass(frozen=True)
class Settings:
    """The settings of one RunPod backend (the README's Settings table), validated.

    >>> s = Settings.load(overrides={"EndpointId": "abc123", "RunPodApiKey": "rpa_x"}, env={})
    >>> s.endpoint_id, s.max_concurrent, s.runpod_api_key
    ('abc123', 10, Secret('********'))
    >>> s.timeouts
    Timeouts(startup=120.0, generation=300.0, request=30.0, release=30.0)

    ``endpoint_id`` may be None at load (the CLI then offers the embedded emulator); the
    engine refuses to start without one.
    """

    endpoint_id: str | None = None
    use_async: bool = True
    max_concurrent: int = 10
    poll_interval_ms: int = 2000
    startup_timeout_sec: float = 120.0
    generation_timeout_sec: float = 300.0
    runpod_api_key: Secret | None = field(default=None, repr=False)
    auto_refresh: bool = False
    idle_timeout_sec: float | Literal["auto"] = 60.0
    worker_protocol: WorkerProtocolName = "auto"
    gpu_price_per_hour: float = 0.69
    runpod_base_url: str = DEFAULT_BASE_URL
    request_timeout_sec: float = 30.0
    release_timeout_sec: float = 30.0
    transport: Literal["ws", "http"] = "ws"
    max_workers: int = 3
    prewarm: tuple[str, ...] = ()
    daily_gpu_seconds_per_user: float = 0.0
    state_file: str | None = None
    database_url: DatabaseUrl | None = None
    replica_heartbeat_sec: float = 5.0
    endpoint_idle_timeout_sec: float = 5.0
    endpoint_queue_delay_sec: float = 4.0

    def __post_init__(self) -> None:
        for spec in _SPECS:
            value = getattr(self, spec.attr)
            if (
                spec.attr == "runpod_api_key"
                and value is not None
                and not isinstance(value, Secret)
            ):
                raise SettingsError(spec.name, "must be a Secret (use Settings.load for strings)")
            if spec.attr != "runpod_api_key":
                try:
                    spec.parse(value)
                except ValueError as exc:
                    raise SettingsError(spec.name, str(exc)) from None

    @property
    def timeouts(self) -> Timeouts:
        """The deadlines as one value object."""
        return Timeouts(
            startup=self.startup_timeout_sec,
            generation=self.generation_timeout_sec,
            request=self.request_timeout_sec,
            release=self.release_timeout_sec,
        )

    @property
    def poll_interval(self) -> float:
        """PollIntervalMs in seconds."""
        return self.poll_interval_ms / 1000

    def replace(self, **changes: Any) -> Settings:
        """A copy with some attributes changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, source: str = "arguments") -> Settings:
        """Settings from one mapping of seed names (or snake_case) to raw values."""
        return cls()._merged(values, source=source)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> Settings:
        """Load TOML file (optional), then environment, then ``overrides``, validating each.

        A TOML file may hold the keys at top level or under a ``[backend]`` table.
        """
        settings = cls()
        if path is not None:
            settings = settings._merged(_read_toml(Path(path)), source=f"file {path}")
        environ = os.environ if env is None else env
        _report_unknown_env(environ)
        from_env: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for spec in _SPECS:
            for name in (*spec.env, _env_name(spec)):
                if name in environ:
                    from_env[spec.attr] = environ[name]
                    sources[spec.attr] = f"env {name}"
        for attr, raw in from_env.items():
            settings = settings._merged({attr: raw}, source=sources[attr])
        if overrides:
            settings = settings._merged(
                {k: v for k, v in overrides.items() if v is not None}, source="arguments"
            )
        return settings

    def _merged(self, values: Mapping[str, Any], *, source: str) -> Settings:
        changes: dict[str, Any] = {}
        for key, raw in values.items():
            spec = _BY_KEY.get(key.lower()) or _BY_KEY.get(key)
            if spec is None:
                known = ", ".join(s.name for s in _SPECS)
                raise SettingsError(key, f"unknown setting; known: {known}", source=source)
            try:
                changes[spec.attr] = spec.parse(raw)
            except ValueError as exc:
                raise SettingsError(spec.name, str(exc), source=source) from None
        return dataclasses.replace(self, **changes)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise SettingsError("config", f"file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError("config", f"file {path} is not valid TOML: {exc}") from None
    backend = data.get("backend", data)
    if not isinstance(backend, dict):
        raise SettingsError("config", f"file {path}: [backend] must be a table")
    # Other tables ([emulator], [service], ...) belong to other parts of swarmpod.
    return {key: value for key, value in backend.items() if not isinstance(value, dict)}

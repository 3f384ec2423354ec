"""Scenario files: emulator config + fault script + requests + expectations, in TOML.

::

    name = "worker never ready"

    [settings]                    # swarmpod Settings, seed names
    StartupTimeoutSec = 90

    [endpoint]                    # orchestrator.emulator.EndpointConfig fields
    cold_start_s = inf
    [endpoint.swarm]              # orchestrator.emulator.swarm.SwarmConfig fields
    seconds_per_step = 0.05

    [[faults]]                    # applied at `at` seconds of scenario time
    at = 0
    kind = "endpoint.http_status" # EndpointFaults ("endpoint.") or SwarmFaults ("swarm.",
                                  # or "worker2." for the 2nd worker's SwarmUI only) method
    args = { route = "run", status = 503, times = 2 }

    [[requests]]
    at = 0
    params = { prompt = "a fox", steps = 10 }
    images = 1
    cancel_after = 30             # optional: the caller gives up after this many seconds
    expect = { state = "Failed", error = "WorkerNotReadyError", phase = "polling" }

    [expect]
    no_worker_left_running = true
    max_billed_seconds = 100      # checked when the emulator keeps a billing ledger

Every bad value is refused with the file, the line and the reason (:class:`ScenarioError`).
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..emulator import EndpointConfig
from ..emulator.swarm import SwarmFaults
from ..errors import OrchestratorError, SettingsError
from ..settings import Settings

__all__ = ["FaultStep", "RequestStep", "Scenario", "ScenarioError", "load_scenario"]

FINAL_STATES = ("Done", "Failed", "Cancelled")
_REQUEST_EXPECT_KEYS = {"state", "error", "phase", "cold_start", "images", "path"}
_SCENARIO_EXPECT_KEYS = {"no_worker_left_running", "max_billed_seconds", "max_api_calls"}


class ScenarioError(OrchestratorError, ValueError):
    """Raised when a scenario file cannot be used; says the file, line and reason."""

    def __init__(self, path: Path | str, line: int | None, reason: str) -> None:
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {reason}")
        self.file = str(path)
        self.line = line
        self.reason = reason


@dataclass(frozen=True)
class FaultStep:
    """One fault applied at ``at`` seconds: ``target`` (endpoint|swarm|workerN), method, args."""

    at: float
    target: str
    method: str
    args: Mapping[str, Any]


@dataclass(frozen=True)
class RequestStep:
    """One generation submitted at ``at`` seconds, with what it must end in."""

    at: float
    params: Mapping[str, Any]
    images: int = 1
    user: str | None = None
    cancel_after: float | None = None
    expect: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Scenario:
    """A whole scenario, validated."""

    name: str
    source: str
    settings: Mapping[str, Any]
    endpoint: EndpointConfig
    faults: tuple[FaultStep, ...]
    requests: tuple[RequestStep, ...]
    expect: Mapping[str, Any]
    description: str = ""


# --- locating lines ----------------------------------------------------------------------

_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"]+)\s*\]\]?")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"]+)\s*=")


class _Lines:
    """Maps ``("requests", 2, "images")``-style key paths to line numbers of the TOML text."""

    def __init__(self, text: str) -> None:
        self._where: dict[tuple[Any, ...], int] = {}
        counts: dict[str, int] = {}
        table: tuple[Any, ...] = ()
        for number, line in enumerate(text.splitlines(), start=1):
            header = _HEADER.match(line)
            if header:
                names = tuple(header.group(2).replace('"', "").split("."))
                if header.group(1) == "[[":
                    key = ".".join(names)
                    index = counts.get(key, 0)
                    counts[key] = index + 1
                    table = (*names, index)
                else:
                    parent = names[0]
                    table = (parent, counts[parent] - 1, *names[1:]) if parent in counts else names
                self._where.setdefault(table, number)
                continue
            key_match = _KEY.match(line)
            if key_match:
                self._where.setdefault((*table, key_match.group(1).strip('"')), number)

    def of(self, *path: Any) -> int | None:
        """The line of the longest known prefix of ``path``."""
        for end in range(len(path), 0, -1):
            if path[:end] in self._where:
                return self._where[path[:end]]
        return None


# --- building values -----------------------------------------------------------------------


def _number(value: Any, what: str, *, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what} must be a number, got {value!r}")
    if math.isnan(value) or value < minimum:
        raise ValueError(f"{what} must be >= {minimum:g}, got {value!r}")
    return float(value)


def _build_dataclass(
    cls: type[Any], table: Mapping[str, Any], lines: _Lines, path: tuple[Any, ...], source: str
) -> Any:
    hints = typing.get_type_hints(cls)
    known = {item.name for item in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, raw in table.items():
        if key not in known:
            raise ScenarioError(
                source,
                lines.of(*path, key),
                f"unknown {cls.__name__} field '{key}'; known: {', '.join(sorted(known))}",
            )
        values[key] = _convert(hints[key], raw, lines, (*path, key), source)
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ScenarioError(source, lines.of(*path), f"{cls.__name__}: {exc}") from None


def _convert(hint: Any, raw: Any, lines: _Lines, path: tuple[Any, ...], source: str) -> Any:
    """Turn a TOML value into what the dataclass field's type wants (nested tables, tuples)."""
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if not isinstance(raw, dict):
            raise ScenarioError(source, lines.of(*path), f"'{path[-1]}' must be a table")
        return _build_dataclass(hint, raw, lines, path, source)
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        for option in typing.get_args(hint):
            if option is type(None) and raw is None:
                return None
            if dataclasses.is_dataclass(option) and isinstance(raw, dict):
                return _convert(option, raw, lines, path, source)
        if isinstance(raw, list):
            for option in typing.get_args(hint):
                if typing.get_origin(option) is tuple:
                    return _convert(option, raw, lines, path, source)
        return raw
    if origin is tuple and isinstance(raw, list):
        args = typing.get_args(hint)
        item = args[0] if args else Any
        return tuple(
            _convert(item, value, lines, (*path, i), source) for i, value in enumerate(raw)
        )
    return raw


# --- the loader ----------------------------------------------------------------------------


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file.

    Raises:
        ScenarioError: the file is missing, is not TOML, or holds a bad value (file, line, why).
    """
    source = Path(path)
    try:
        text = source.read_text()
    except OSError as exc:
        raise ScenarioError(source, None, f"cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        raise ScenarioError(
            source, int(match.group(1)) if match else None, f"not TOML: {exc}"
        ) from None
    lines = _Lines(text)
    return _scenario_from(data, lines, str(source))


def _scenario_from(data: Mapping[str, Any], lines: _Lines, source: str) -> Scenario:
    allowed = {"name", "description", "settings", "endpoint", "faults", "requests", "expect"}
    for key in data:
        if key not in allowed:
            raise ScenarioError(
                source, lines.of(key), f"unknown key '{key}'; known: {sorted(allowed)}"
            )
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ScenarioError(source, lines.of("name"), "'name' (a non-empty string) is required")

    settings = data.get("settings", {})
    if not isinstance(settings, dict):
        raise ScenarioError(source, lines.of("settings"), "[settings] must be a table")
    try:
        Settings.from_mapping({"EndpointId": "check", **settings})
    except SettingsError as exc:
        bad = next((k for k in settings if k.lower() == exc.setting.lower()), None)
        raise ScenarioError(
            source, lines.of("settings", bad) if bad else lines.of("settings"), exc.message
        ) from None

    endpoint = _build_dataclass(
        EndpointConfig, data.get("endpoint", {}), lines, ("endpoint",), source
    )

    faults = tuple(
        _fault(raw, index, lines, source) for index, raw in enumerate(data.get("faults", []))
    )
    raw_requests = data.get("requests", [])
    if not raw_requests:
        raise ScenarioError(source, None, "at least one [[requests]] entry is required")
    requests = tuple(_request(raw, index, lines, source) for index, raw in enumerate(raw_requests))

    expect = data.get("expect", {})
    if not isinstance(expect, dict):
        raise ScenarioError(source, lines.of("expect"), "[expect] must be a table")
    for key in expect:
        if key not in _SCENARIO_EXPECT_KEYS:
            raise ScenarioError(
                source,
                lines.of("expect", key),
                f"unknown expectation '{key}'; known: {sorted(_SCENARIO_EXPECT_KEYS)}",
            )
    return Scenario(
        name=name,
        source=source,
        settings=settings,
        endpoint=endpoint,
        faults=faults,
        requests=requests,
        expect=expect,
        description=str(data.get("description", "")),
    )


_WORKER_TARGET = re.compile(r"worker([1-9][0-9]*)")
"""``workerN``: the fake SwarmUI of the N-th worker started (1 = the first)."""


def _fault(raw: Any, index: int, lines: _Lines, source: str) -> FaultStep:
    where = ("faults", index)
    if not isinstance(raw, dict):
        raise ScenarioError(source, lines.of(*where), "each [[faults]] entry must be a table")
    kind = raw.get("kind")
    target, _, method = str(kind).partition(".")
    from ..emulator import EndpointFaults

    owners: dict[str, type[Any]] = {"endpoint": EndpointFaults, "swarm": SwarmFaults}
    owner = SwarmFaults if _WORKER_TARGET.fullmatch(target) else owners.get(target)
    if owner is None or method.startswith("_") or not callable(getattr(owner, method, None)):
        choices = sorted(
            f"{name}.{attr}"
            for name, cls in owners.items()
            for attr in vars(cls)
            if not attr.startswith("_")
            and callable(getattr(cls, attr))
            and attr not in {"take", "clear", "pending"}
        )
        raise ScenarioError(
            source,
            lines.of(*where, "kind"),
            f"unknown fault kind {kind!r}; known: {', '.join(choices)} "
            "(and workerN.<swarm method> for the N-th worker's SwarmUI only)",
        )
    args = raw.get("args", {})
    if not isinstance(args, dict):
        raise ScenarioError(source, lines.of(*where, "args"), "'args' must be a table")
    try:
        at = _number(raw.get("at", 0), "'at'")
    except ValueError as exc:
        raise ScenarioError(source, lines.of(*where, "at"), str(exc)) from None
    extra = set(raw) - {"at", "kind", "args"}
    if extra:
        raise ScenarioError(
            source, lines.of(*where, sorted(extra)[0]), f"unknown key '{sorted(extra)[0]}'"
        )
    return FaultStep(at=at, target=target, method=method, args=args)


def _request(raw: Any, index: int, lines: _Lines, source: str) -> RequestStep:
    where = ("requests", index)
    if not isinstance(raw, dict):
        raise ScenarioError(source, lines.of(*where), "each [[requests]] entry must be a table")
    extra = set(raw) - {"at", "params", "images", "user", "cancel_after", "expect"}
    if extra:
        key = sorted(extra)[0]
        raise ScenarioError(source, lines.of(*where, key), f"unknown key '{key}'")
    params = raw.get("params", {})
    if not isinstance(params, dict):
        raise ScenarioError(source, lines.of(*where, "params"), "'params' must be a table")
    images = raw.get("images", 1)
    if isinstance(images, bool) or not isinstance(images, int) or images < 1:
        raise ScenarioError(
            source, lines.of(*where, "images"), f"'images' must be an integer >= 1, got {images!r}"
        )
    try:
        at = _number(raw.get("at", 0), "'at'")
        cancel_after = raw.get("cancel_after")
        if cancel_after is not None:
            cancel_after = _number(cancel_after, "'cancel_after'")
    except ValueError as exc:
        raise ScenarioError(source, lines.of(*where), str(exc)) from None
    expect = raw.get("expect", {})
    if not isinstance(expect, dict):
        raise ScenarioError(source, lines.of(*where, "expect"), "'expect' must be a table")
    for key in expect:
        if key not in _REQUEST_EXPECT_KEYS:
            raise ScenarioError(
                source,
                lines.of(*where, "expect"),
                f"unknown expectation '{key}'; known: {sorted(_REQUEST_EXPECT_KEYS)}",
            )
    state = expect.get("state")
    if state is not None and state not in FINAL_STATES:
        raise ScenarioError(
            source,
            lines.of(*where, "expect"),
            f"expect.state must be one of {FINAL_STATES}, got {state!r}",
        )
    user = raw.get("user")
    return RequestStep(
        at=at,
        params=params,
        images=images,
        user=str(user) if user is not None else None,
        cancel_after=cancel_after,
        expect=expect,
    )

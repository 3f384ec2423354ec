"""Reading a cassette: every line validated, a bad file refused with file, line and reason."""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal

from yarl import URL

from ..errors import SettingsError
from ..settings import Settings
from ._cassette import (
    ERROR_KINDS,
    FINAL_STATES,
    FORMAT,
    MESSAGE_TYPES,
    VERSION,
    Cassette,
    CassetteError,
    ErrorFacts,
    Exchange,
    ExchangeError,
    GenerationCall,
    GenerationOutcome,
    ImageFacts,
    WsMessage,
)

__all__ = ["load_cassette"]

_RETRY_FIELDS: Final = {
    "attempts": int,
    "base_delay": float,
    "max_delay": float,
    "max_retry_after": float,
}


class _Line:
    """One parsed line and the helpers that refuse its bad fields with the line number."""

    def __init__(self, source: str, number: int, data: Mapping[str, Any]) -> None:
        self.source = source
        self.number = number
        self.data = data

    def fail(self, reason: str) -> CassetteError:
        return CassetteError(self.source, self.number, reason)

    def get(self, name: str, kind: type | tuple[type, ...], *, where: str = "") -> Any:
        return self.check(self.data, name, kind, where=where)

    def check(
        self,
        data: Mapping[str, Any],
        name: str,
        kind: type | tuple[type, ...],
        *,
        where: str = "",
        required: bool = True,
    ) -> Any:
        label = f"{where}{name}"
        if name not in data:
            if required:
                raise self.fail(f"missing field '{label}'")
            return None
        value = data[name]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            names = " or ".join(_type_name(k) for k in kinds)
            raise self.fail(f"field '{label}' must be {names}, got {_type_name(type(value))}")
        return value

    def seconds(self, data: Mapping[str, Any], name: str, *, where: str = "") -> float:
        value = float(self.check(data, name, float, where=where))
        if not math.isfinite(value) or value < 0:
            raise self.fail(f"field '{where}{name}' must be a finite number >= 0, got {value!r}")
        return value

    def body(self, data: Mapping[str, Any], prefix: str, *, where: str = "") -> bytes | None:
        text = self.check(data, prefix, str, where=where, required=False)
        encoded = self.check(data, f"{prefix}_b64", str, where=where, required=False)
        if text is not None and encoded is not None:
            raise self.fail(f"'{where}{prefix}' and '{where}{prefix}_b64' are both set")
        if encoded is not None:
            try:
                return base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise self.fail(f"field '{where}{prefix}_b64' is not valid base64") from None
        return None if text is None else str(text).encode("utf-8")


def _type_name(kind: type) -> str:
    return {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "true or false",
        dict: "an object",
        list: "a list",
        type(None): "null",
    }.get(kind, kind.__name__)


def load_cassette(path: str | Path) -> Cassette:
    """Read and validate a cassette file.

    Raises:
        CassetteError: the file is missing or unreadable, a line is not a JSON object, a
            record is unknown, misses a field or has a bad value, the version is not one this
            swarmpod reads, or the file ends before its outcome trailer (file, line, reason).
    """
    source = Path(path)
    name = str(source)
    try:
        raw = source.read_bytes()
    except OSError as exc:
        raise CassetteError(name, None, f"cannot read: {exc.strerror}") from None
    lines = raw.split(b"\n")
    cut = lines[-1] != b""  # the last line has no newline: the writer may have been stopped
    if not cut:
        lines.pop()
    if not lines:
        raise CassetteError(name, None, "empty file: no header line")
    parsed: list[_Line] = []
    for number, text in enumerate(lines, start=1):
        try:
            parsed.append(_parse(name, number, text))
        except CassetteError as exc:
            if cut and number == len(lines):
                raise CassetteError(
                    name, number, f"truncated: the last line is cut off ({exc.reason})"
                ) from None
            raise
    header = parsed[0]
    if header.data.get("kind") != "header":
        raise header.fail("the first line must be the header (kind 'header')")
    facts = _header(header)
    trailer = parsed[-1]
    if len(parsed) < 2 or trailer.data.get("kind") != "outcome":
        raise CassetteError(
            name,
            len(lines),
            "truncated: the file ends without its outcome trailer (the recording did not finish)",
        )
    generations: list[GenerationCall] = []
    exchanges: list[Exchange] = []
    for line in parsed[1:-1]:
        kind = line.data.get("kind")
        if kind == "generation":
            generations.append(_generation(line, len(generations)))
        elif kind in ("http", "ws"):
            exchanges.append(_exchange(line))
        elif kind in ("header", "outcome"):
            raise line.fail(f"a second '{kind}' line; it may only appear once")
        else:
            raise line.fail(f"unknown record kind {kind!r}; expected generation, http or ws")
    duration, outcomes = _trailer(trailer, len(generations))
    seen: set[int] = set()
    for exchange in exchanges:
        if exchange.seq in seen:
            raise CassetteError(name, exchange.line, f"duplicate exchange seq {exchange.seq}")
        seen.add(exchange.seq)
    return Cassette(
        source=name,
        swarmpod_version=facts["swarmpod"],
        recorded_at=facts["recorded_at"],
        settings=facts["settings"],
        retry=facts["retry"],
        generations=tuple(generations),
        exchanges=tuple(sorted(exchanges, key=lambda e: e.seq)),
        outcomes=outcomes,
        duration=duration,
        clock_phase=facts["clock_phase"],
        jitter=facts["jitter"],
    )


def _parse(source: str, number: int, raw: bytes) -> _Line:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CassetteError(source, number, "not UTF-8 text") from None
    if not text.strip():
        raise CassetteError(source, number, "empty line")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CassetteError(source, number, f"not JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(data, dict):
        raise CassetteError(source, number, "each line must be a JSON object")
    return _Line(source, number, data)


def _header(line: _Line) -> dict[str, Any]:
    if line.get("format", str) != FORMAT:
        raise line.fail(f"not a swarmpod cassette (format must be {FORMAT!r})")
    version = line.get("version", int)
    if version != VERSION:
        raise line.fail(f"unknown cassette version {version!r}; this swarmpod reads {VERSION}")
    settings = dict(line.get("settings", dict))
    if "runpod_api_key" in settings or "RunPodApiKey" in settings:
        raise line.fail("settings must not hold an API key")
    try:
        Settings.from_mapping(settings, source="the cassette header")
    except SettingsError as exc:
        raise line.fail(f"settings: {exc.message}") from None
    for required in ("endpoint_id", "runpod_base_url"):
        if not settings.get(required):
            raise line.fail(f"settings: {required} is required")
    raw_retry = line.get("retry", dict)
    retry: dict[str, float] = {}
    for name, kind in _RETRY_FIELDS.items():
        value = line.check(raw_retry, name, kind, where="retry.")
        if value < (1 if name == "attempts" else 0):
            raise line.fail(f"field 'retry.{name}' is out of range: {value!r}")
        retry[name] = value
    jitter = line.check(raw_retry, "jitter", list, where="retry.")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in jitter):
        raise line.fail("field 'retry.jitter' must be a list of numbers >= 0")
    phase = line.seconds(line.data, "clock_phase")
    if phase >= 1:
        raise line.fail(f"field 'clock_phase' must be within [0, 1), got {phase!r}")
    return {
        "swarmpod": line.get("swarmpod", str),
        "recorded_at": line.get("recorded_at", str),
        "settings": settings,
        "retry": retry,
        "clock_phase": phase,
        "jitter": tuple(float(v) for v in jitter),
    }


def _generation(line: _Line, expected_index: int) -> GenerationCall:
    index = line.get("index", int)
    if index != expected_index:
        raise line.fail(f"generation index {index}, expected {expected_index} (in order from 0)")
    images = line.get("images", int)
    if images < 1:
        raise line.fail(f"field 'images' must be >= 1, got {images}")
    user = line.check(line.data, "user", (str, type(None)), required=False)
    after = line.check(line.data, "after_progress", int, required=False) or 0
    if after < 0:
        raise line.fail(f"field 'after_progress' must be >= 0, got {after}")
    cancel_after = None
    if line.data.get("cancel_after") is not None:
        cancel_after = line.seconds(line.data, "cancel_after")
    return GenerationCall(
        index=index,
        at=line.seconds(line.data, "at"),
        params=line.get("params", dict),
        images=images,
        user=user,
        after_progress=after,
        cancel_after=cancel_after,
    )


def _exchange(line: _Line) -> Exchange:
    data = line.data
    kind: Literal["http", "ws"] = "ws" if data["kind"] == "ws" else "http"
    seq = line.get("seq", int)
    method = line.get("method", str)
    url = line.get("url", str)
    parsed = URL(url)
    schemes = ("ws", "wss") if kind == "ws" else ("http", "https")
    if parsed.scheme not in schemes or not parsed.host:
        raise line.fail(f"field 'url' must be an absolute {'/'.join(schemes)} URL")
    status = line.check(data, "status", (int, type(None)))
    if status is not None and not 100 <= status <= 599:
        raise line.fail(f"field 'status' must be an HTTP status (100-599), got {status}")
    error = _exchange_error(line)
    if (status is None) == (error is None):
        raise line.fail("an exchange has either a 'status' or an 'error', not both or neither")
    messages: tuple[WsMessage, ...] = ()
    if kind == "ws":
        raw_messages = line.get("messages", list)
        messages = tuple(_message(line, n, item) for n, item in enumerate(raw_messages))
    return Exchange(
        seq=seq,
        kind=kind,
        t=line.seconds(data, "t"),
        dt=line.seconds(data, "dt"),
        method=method.upper(),
        url=url,
        request_headers=_string_map(line, "request_headers"),
        request_body=line.body(data, "request_body"),
        status=status,
        headers=_string_map(line, "headers"),
        body=line.body(data, "body"),
        error=error,
        messages=messages,
        line=line.number,
    )


def _string_map(line: _Line, name: str) -> dict[str, str]:
    value = line.check(line.data, name, dict, required=False) or {}
    if not all(isinstance(v, str) for v in value.values()):
        raise line.fail(f"field '{name}' must map names to strings")
    return dict(value)


def _exchange_error(line: _Line) -> ExchangeError | None:
    raw = line.check(line.data, "error", (dict, type(None)), required=False)
    if raw is None:
        return None
    kind = line.check(raw, "kind", str, where="error.")
    if kind not in ERROR_KINDS:
        raise line.fail(f"field 'error.kind' must be one of {', '.join(ERROR_KINDS)}")
    return ExchangeError(kind=kind, type=line.check(raw, "type", str, where="error."))


def _message(line: _Line, number: int, raw: Any) -> WsMessage:
    where = f"messages[{number}]."
    if not isinstance(raw, dict):
        raise line.fail(f"messages[{number}] must be an object")
    sender = line.check(raw, "from", str, where=where)
    if sender not in ("client", "server"):
        raise line.fail(f"field '{where}from' must be client or server, got {sender!r}")
    kind = line.check(raw, "type", str, where=where)
    if kind not in MESSAGE_TYPES:
        raise line.fail(f"field '{where}type' must be one of {', '.join(MESSAGE_TYPES)}")
    data: str | bytes | None = None
    if kind == "text":
        data = line.check(raw, "data", str, where=where)
    elif kind == "binary":
        data = line.body(raw, "data", where=where)
        if data is None:
            raise line.fail(f"missing field '{where}data_b64'")
    code = line.check(raw, "code", (int, type(None)), where=where, required=False)
    return WsMessage(
        t=line.seconds(raw, "t", where=where),
        sender="client" if sender == "client" else "server",
        type=kind,
        data=data,
        code=code,
    )


def _trailer(line: _Line, generations: int) -> tuple[float, tuple[GenerationOutcome, ...]]:
    duration = line.seconds(line.data, "duration")
    raw = line.get("generations", list)
    if len(raw) != generations:
        raise line.fail(
            f"the outcome lists {len(raw)} generation(s), the cassette has {generations}"
        )
    return duration, tuple(_outcome(line, index, item) for index, item in enumerate(raw))


def _outcome(line: _Line, index: int, raw: Any) -> GenerationOutcome:
    where = f"generations[{index}]."
    if not isinstance(raw, dict):
        raise line.fail(f"generations[{index}] must be an object")
    if line.check(raw, "index", int, where=where) != index:
        raise line.fail(f"field '{where}index' must be {index}")
    state = line.check(raw, "state", str, where=where)
    if state not in FINAL_STATES:
        raise line.fail(f"field '{where}state' must be one of {', '.join(FINAL_STATES)}")
    path = line.check(raw, "path", list, where=where)
    if not all(isinstance(item, str) for item in path):
        raise line.fail(f"field '{where}path' must be a list of state names")
    images: list[ImageFacts] = []
    for number, item in enumerate(line.check(raw, "images", list, where=where)):
        if not isinstance(item, dict):
            raise line.fail(f"{where}images[{number}] must be an object")
        image_where = f"{where}images[{number}]."
        images.append(
            ImageFacts(
                seed=line.check(item, "seed", (int, type(None)), where=image_where),
                sha256=line.check(item, "sha256", str, where=image_where),
            )
        )
    error_raw = line.check(raw, "error", (dict, type(None)), where=where)
    error = None
    if error_raw is not None:
        error_where = f"{where}error."
        error = ErrorFacts(
            type=line.check(error_raw, "type", str, where=error_where),
            phase=line.check(error_raw, "phase", (str, type(None)), where=error_where),
            status=line.check(
                error_raw, "status", (int, type(None)), where=error_where, required=False
            ),
        )
    return GenerationOutcome(
        index=index,
        state=state,
        path=tuple(path),
        cold_start=line.check(raw, "cold_start", (bool, type(None)), where=where),
        images=tuple(images),
        error=error,
    )

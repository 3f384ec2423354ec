"""The JSON-lines span file: written by :class:`JsonLinesSpanExporter`, read by
:func:`read_trace_file` (``swarmpod report`` builds its page from it).

The file is UTF-8 text with one JSON object per finished span, one span per line, in the order
the spans ended. Every export appends, so several runs can share one file. The keys of a line:

- ``name``: the span's name (``Generation:sdxl-base``, ``Waking:runpod``, ``Cost:generation``).
- ``trace_id``: 32 lowercase hex digits; ``span_id``: 16; ``parent_span_id``: 16, or null for
  a root span.
- ``kind``: the span kind's name (``INTERNAL``, ``SERVER``, ``CLIENT``...).
- ``start_ns``, ``end_ns``: integers, nanoseconds since the Unix epoch.
- ``status``: ``UNSET``, ``OK`` or ``ERROR``; ``status_description``: text or null.
- ``attributes``: an object of the span's attributes; values are strings, booleans, numbers or
  arrays of them (a non-finite float is written as the text ``"nan"``, ``"inf"``, ``"-inf"``).
- ``events``: an array of ``{"name", "time_ns", "attributes"}``.
- ``resource``: an object of the resource's attributes (``service.name``...).

A process killed while writing may leave an incomplete last line; the reader skips it with a
warning. Any other line that is not a span record is an error naming its line number.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final, TypeAlias

import msgspec
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

__all__ = [
    "AttributeValue",
    "JsonLinesSpanExporter",
    "SpanEventRecord",
    "SpanRecord",
    "read_trace_file",
]

_log = logging.getLogger(__name__)

AttributeValue: TypeAlias = str | bool | int | float | list[str | bool | int | float]
"""An attribute value as the file holds it (JSON-native)."""

_STATUSES: Final = frozenset({"UNSET", "OK", "ERROR"})
_ENCODER: Final = msgspec.json.Encoder()  # several times faster than json, on the export thread
_FILE_MODE: Final = 0o600
_NS_PER_S: Final = 1e9


@dataclass(frozen=True)
class SpanEventRecord:
    """A span event read from a trace file.

    Attributes:
        name: the event's name.
        time_ns: when it happened, nanoseconds since the epoch.
        attributes: its attributes.
    """

    name: str
    time_ns: int
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)


@dataclass(frozen=True)
class SpanRecord:
    """A finished span as a trace file holds it.

    Attributes:
        name: the span's name.
        trace_id: 32 lowercase hex digits.
        span_id: 16 lowercase hex digits.
        parent_span_id: the parent's span id, None for a root span.
        kind: the span kind's name (``INTERNAL``, ``SERVER``...).
        start_ns: its start, nanoseconds since the epoch.
        end_ns: its end, nanoseconds since the epoch.
        status: ``UNSET``, ``OK`` or ``ERROR``.
        status_description: the status's description, if any.
        attributes: the span's attributes.
        events: its events, in order.
        resource: the attributes of the resource that made it.
    """

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    kind: str
    start_ns: int
    end_ns: int
    status: str = "UNSET"
    status_description: str | None = None
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)
    events: tuple[SpanEventRecord, ...] = ()
    resource: Mapping[str, AttributeValue] = field(default_factory=dict)

    @property
    def start_s(self) -> float:
        """Its start, seconds since the epoch."""
        return self.start_ns / _NS_PER_S

    @property
    def end_s(self) -> float:
        """Its end, seconds since the epoch."""
        return self.end_ns / _NS_PER_S

    @property
    def duration_s(self) -> float:
        """How long it lasted, in seconds (never negative)."""
        return max(0, self.end_ns - self.start_ns) / _NS_PER_S

    @property
    def is_error(self) -> bool:
        """Whether its status is ERROR."""
        return self.status == "ERROR"

    def attr(self, name: str, default: AttributeValue | None = None) -> AttributeValue | None:
        """The attribute ``name``, or ``default`` when the span does not have it."""
        return self.attributes.get(name, default)

    def attr_str(self, name: str, default: str | None = None) -> str | None:
        """The attribute ``name`` as text (a number or boolean is formatted), or ``default``."""
        value = self.attributes.get(name)
        if value is None or isinstance(value, list):
            return default
        return value if isinstance(value, str) else json.dumps(value)

    def attr_float(self, name: str, default: float | None = None) -> float | None:
        """The numeric attribute ``name`` (not a boolean), or ``default`` when not a number."""
        value = self.attributes.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return default
        return float(value)

    def attr_bool(self, name: str, default: bool = False) -> bool:
        """The boolean attribute ``name``, or ``default`` when not a boolean."""
        value = self.attributes.get(name)
        return value if isinstance(value, bool) else default


class JsonLinesSpanExporter(SpanExporter):
    """A span exporter that appends one JSON line per finished span to a file.

    The file (and its directory) is created when missing, with mode 0600: spans name users and
    models. Opening appends, so several runs can share a file. Each batch is written at once
    and flushed; exports from several threads are serialized.

    Args:
        path: the trace file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, _FILE_MODE)
        self._file: IO[bytes] | None = os.fdopen(fd, "ab")
        self._lock = threading.Lock()
        self._resources = _ResourceCache()

    def __repr__(self) -> str:
        return f"JsonLinesSpanExporter({str(self.path)!r})"

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Append the spans, one line each, and flush."""
        payload = b"".join(_span_line(span, self._resources) for span in spans)
        with self._lock:
            if self._file is None:
                return SpanExportResult.FAILURE
            try:
                self._file.write(payload)
                self._file.flush()
            except OSError:
                _log.exception("cannot append %d spans to %s", len(spans), self.path)
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Close the file; later exports fail."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing is buffered: every export is flushed already."""
        return True


def _span_line(
    span: ReadableSpan, resource_json: Callable[[Any], dict[str, Any]] | None = None
) -> bytes:
    """The JSON line (UTF-8, with its newline) that the trace file holds for ``span``;
    ``resource_json`` turns its resource into JSON values (default: each time)."""
    if resource_json is None:
        resource_json = _resource_attributes
    context = span.get_span_context()
    if context is None:
        raise ValueError(f"span {span.name!r} has no context")
    record = {
        "name": span.name,
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
        "parent_span_id": format(span.parent.span_id, "016x") if span.parent else None,
        "kind": span.kind.name,
        "start_ns": span.start_time or 0,
        "end_ns": span.end_time or span.start_time or 0,
        "status": span.status.status_code.name,
        "status_description": span.status.description,
        "attributes": _json_attributes(span.attributes or {}),
        "events": [
            {
                "name": event.name,
                "time_ns": event.timestamp,
                "attributes": _json_attributes(event.attributes or {}),
            }
            for event in span.events
        ],
        "resource": resource_json(span.resource),
    }
    return _ENCODER.encode(record) + b"\n"


def _resource_attributes(resource: Any) -> dict[str, Any]:
    return _json_attributes(resource.attributes)


class _ResourceCache:
    """A provider's resource is one object for all of its spans: its JSON is made once."""

    def __init__(self) -> None:
        self._last: tuple[object, dict[str, Any]] | None = None

    def __call__(self, resource: Any) -> dict[str, Any]:
        last = self._last
        if last is None or last[0] is not resource:
            last = self._last = (resource, _resource_attributes(resource))
        return last[1]


def _json_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {str(key): _json_value(value) for key, value in attributes.items()}


def _json_value(value: Any) -> Any:
    if isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Sequence):
        return [_json_value(item) for item in value]
    return str(value)


def read_trace_file(path: str | os.PathLike[str]) -> list[SpanRecord]:
    """The spans of a trace file, in file order.

    Raises:
        ValueError: a line (other than an incomplete last one) is not a span record; the
            message names the file and the line number.
        OSError: the file cannot be read.
    """
    text = Path(path).read_text(encoding="utf-8")
    lines = text.split("\n")
    records: list[SpanRecord] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(_record(json.loads(line)))
        except ValueError as error:
            if number == len(lines):  # no newline after it: the writer was cut off
                _log.warning("%s:%d: skipped an incomplete last line (%s)", path, number, error)
                break
            raise ValueError(f"{path}:{number}: not a span record: {error}") from error
    return records


def _record(data: object) -> SpanRecord:
    """A span record from a decoded line; ValueError when it is not one."""
    obj = _mapping(data, "line")
    status = _text(obj, "status")
    if status not in _STATUSES:
        raise ValueError(f"status {status!r} is not one of {sorted(_STATUSES)}")
    parent = obj.get("parent_span_id")
    if parent is not None and not isinstance(parent, str):
        raise ValueError("parent_span_id is neither text nor null")
    description = obj.get("status_description")
    if description is not None and not isinstance(description, str):
        raise ValueError("status_description is neither text nor null")
    events = obj.get("events", [])
    if not isinstance(events, list):
        raise ValueError("events is not an array")
    return SpanRecord(
        name=_text(obj, "name"),
        trace_id=_text(obj, "trace_id"),
        span_id=_text(obj, "span_id"),
        parent_span_id=parent,
        kind=_text(obj, "kind"),
        start_ns=_integer(obj, "start_ns"),
        end_ns=_integer(obj, "end_ns"),
        status=status,
        status_description=description,
        attributes=_mapping(obj.get("attributes", {}), "attributes"),
        events=tuple(_event(event) for event in events),
        resource=_mapping(obj.get("resource", {}), "resource"),
    )


def _event(data: object) -> SpanEventRecord:
    obj = _mapping(data, "event")
    return SpanEventRecord(
        name=_text(obj, "name"),
        time_ns=_integer(obj, "time_ns"),
        attributes=_mapping(obj.get("attributes", {}), "event attributes"),
    )


def _mapping(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} is not a JSON object")
    return value


def _text(obj: Mapping[str, object], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{key} is missing or not text")
    return value


def _integer(obj: Mapping[str, object], key: str) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} is missing or not an integer")
    return value

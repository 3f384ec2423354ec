"""Writing a cassette: its records as JSON lines, header first, outcome trailer last."""

from __future__ import annotations

import base64
import json
from typing import Any

from ._cassette import FORMAT, VERSION, Cassette, Exchange, GenerationOutcome, WsMessage

__all__ = ["dump_lines"]


def dump_lines(cassette: Cassette) -> list[str]:
    """The cassette as JSON lines (no newlines inside a line), header first, outcome last."""
    header = {
        "kind": "header",
        "format": FORMAT,
        "version": VERSION,
        "swarmpod": cassette.swarmpod_version,
        "recorded_at": cassette.recorded_at,
        "clock_phase": _time(cassette.clock_phase),
        "settings": dict(cassette.settings),
        "retry": {**cassette.retry, "jitter": [_time(value) for value in cassette.jitter]},
    }
    records: list[dict[str, Any]] = [header]
    for call in cassette.generations:
        records.append(
            {
                "kind": "generation",
                "index": call.index,
                "at": _time(call.at),
                "params": dict(call.params),
                "images": call.images,
                "user": call.user,
                "after_progress": call.after_progress,
                "cancel_after": None if call.cancel_after is None else _time(call.cancel_after),
            }
        )
    records.extend(_exchange_json(exchange) for exchange in cassette.exchanges)
    records.append(
        {
            "kind": "outcome",
            "duration": _time(cassette.duration),
            "generations": [_outcome_json(outcome) for outcome in cassette.outcomes],
        }
    )
    return [json.dumps(record, ensure_ascii=False, separators=(",", ":")) for record in records]


def _time(value: float) -> float:
    return round(value, 6)


def _body_json(prefix: str, body: bytes | None) -> dict[str, Any]:
    if body is None:
        return {}
    try:
        return {prefix: body.decode("utf-8")}
    except UnicodeDecodeError:
        return {f"{prefix}_b64": base64.b64encode(body).decode("ascii")}


def _exchange_json(exchange: Exchange) -> dict[str, Any]:
    data: dict[str, Any] = {
        "kind": exchange.kind,
        "seq": exchange.seq,
        "t": _time(exchange.t),
        "dt": _time(exchange.dt),
        "method": exchange.method,
        "url": exchange.url,
        "request_headers": dict(exchange.request_headers),
        **_body_json("request_body", exchange.request_body),
        "status": exchange.status,
        "headers": dict(exchange.headers),
        **_body_json("body", exchange.body),
    }
    if exchange.error is not None:
        data["error"] = {"kind": exchange.error.kind, "type": exchange.error.type}
    if exchange.kind == "ws":
        data["messages"] = [_message_json(message) for message in exchange.messages]
    return data


def _message_json(message: WsMessage) -> dict[str, Any]:
    data: dict[str, Any] = {"t": _time(message.t), "from": message.sender, "type": message.type}
    if isinstance(message.data, str):
        data["data"] = message.data
    elif isinstance(message.data, bytes):
        data["data_b64"] = base64.b64encode(message.data).decode("ascii")
    if message.code is not None:
        data["code"] = message.code
    return data


def _outcome_json(outcome: GenerationOutcome) -> dict[str, Any]:
    error = outcome.error
    return {
        "index": outcome.index,
        "state": outcome.state,
        "path": list(outcome.path),
        "cold_start": outcome.cold_start,
        "images": [{"seed": image.seed, "sha256": image.sha256} for image in outcome.images],
        "error": None
        if error is None
        else {"type": error.type, "phase": error.phase, "status": error.status},
    }

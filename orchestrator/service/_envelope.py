"""SwarmUI's request and error envelopes (specs/swarmui-api.md §1, §1.1).

Requests are POSTed JSON objects; errors the pipeline finds come with 400/401 and an
``error_id``; errors a route's handler finds come with **200** and ``{"error": text}``.
Parameters bind from the JSON root by exact key, coerced like SwarmUI does (``"5"`` binds to
an int, ``1.0`` does not).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final

from aiohttp import web

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_JSON_DEPTH",
    "ApiRefusalError",
    "bad_request",
    "failure",
    "ok",
    "param_bool",
    "param_int",
    "param_str",
    "parse_json_object",
    "read_body",
]

MAX_BODY_BYTES: Final = 10 * 1024 * 1024
"""The largest request body taken (SwarmUI's MaxNetworkRequestMegabytes, scaled down)."""

MAX_JSON_DEPTH: Final = 64
"""The deepest nesting of a request (Json.NET's default ``MaxDepth``, which SwarmUI's
``JObject.Parse`` keeps)."""

_HEADERS: Final = {"Cache-Control": "no-store"}


class ApiRefusalError(Exception):
    """A request that ends with a SwarmUI error envelope.

    Attributes:
        status: the HTTP status (400, 401, or 200 for a handler-level error).
        body: the JSON body (``error`` and maybe ``error_id``).
    """

    def __init__(self, status: int, error: str, error_id: str | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.body: dict[str, Any] = {"error": error}
        if error_id is not None:
            self.body["error_id"] = error_id

    def response(self) -> web.Response:
        """The envelope as an HTTP response."""
        return ok(self.body, status=self.status)


def ok(body: Mapping[str, Any], *, status: int = 200) -> web.Response:
    """A JSON answer the way SwarmUI sends it (``Cache-Control: no-store``)."""
    return web.json_response(dict(body), status=status, headers=_HEADERS)


def bad_request(error: str, error_id: str = "basic_api") -> ApiRefusalError:
    """A pipeline refusal: 400 with ``error_id``."""
    return ApiRefusalError(400, error, error_id)


def failure(error: str, error_id: str | None = None) -> ApiRefusalError:
    """A handler-level error: 200 with ``error`` (and an ``error_id`` when SwarmUI sends one)."""
    return ApiRefusalError(200, error, error_id)


async def read_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object, checked as SwarmUI's pipeline checks it (§1).

    Raises:
        ApiRefusalError: wrong content type, bad content length, not JSON, or not an object.
    """
    if "json" not in (request.content_type or ""):
        raise bad_request("Wrong content type")
    length = request.content_length
    if length is None or length <= 0 or length > MAX_BODY_BYTES:
        raise bad_request("bad content length")
    try:
        raw = await request.content.readexactly(length)
    except Exception:  # a client that promised more than it sent, or went away
        raise bad_request("bad content length") from None
    return parse_json_object(raw, "Request body")


def parse_json_object(raw: str | bytes, what: str) -> dict[str, Any]:
    """The JSON object in ``raw`` (an HTTP body, a WebSocket message).

    >>> parse_json_object('{"images": 1}', "Request body")
    {'images': 1}
    >>> parse_json_object('{"x": ' + "[" * 64 + "]" * 64 + "}", "Request body")
    Traceback (most recent call last):
    ...
    orchestrator.service._envelope.ApiRefusalError: Request body is nested too deeply (more ...

    Raises:
        ApiRefusalError: not JSON (also not UTF-8, or nested past Json.NET's 64 levels, which
            SwarmUI's parser refuses too), ``null``, or not an object; ``what`` names it.
    """
    too_deep = bad_request(f"{what} is nested too deeply (more than {MAX_JSON_DEPTH} levels)")
    try:
        body = json.loads(raw)
    except RecursionError:
        raise too_deep from None
    except (ValueError, UnicodeDecodeError):
        raise bad_request(f"{what} is not valid JSON") from None
    if body is None:
        raise bad_request("null input")
    if not isinstance(body, dict):
        raise bad_request(f"{what} must be a JSON object")
    if _deeper_than(body, MAX_JSON_DEPTH):
        raise too_deep
    return body


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests more than ``limit`` objects and arrays (without recursing)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _missing(name: str) -> ApiRefusalError:
    return failure(f"Missing required parameter '{name}'")


def _invalid(name: str, value: Any, kind: str) -> ApiRefusalError:
    return failure(f"Invalid value '{_shown(value)}' for parameter '{name}', must be type '{kind}'")


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 64 else text[:61] + "..."


_NO_DEFAULT: Final = object()
_INT32_MIN: Final = -(2**31)
_INT32_MAX: Final = 2**31 - 1
_INT32_TEXT: Final = re.compile(r"\s*[+-]?[0-9]+\s*")


def param_str(body: Mapping[str, Any], name: str, default: Any = _NO_DEFAULT) -> str:
    """A string parameter (numbers and booleans coerce, as with SwarmUI's ``ToString``)."""
    if name not in body or body[name] is None:
        if default is _NO_DEFAULT:
            raise _missing(name)
        return str(default)
    value = body[name]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise _invalid(name, value, "String")


def param_int(body: Mapping[str, Any], name: str, default: int | None = None) -> int:
    """An ``Int32`` parameter: an int or an integer string in range; ``1.0`` and ``true`` do
    not bind."""
    if name not in body or body[name] is None:
        if default is None:
            raise _missing(name)
        return default
    value = body[name]
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _INT32_TEXT.fullmatch(value):
        number = int(value.strip())
    if number is None or not _INT32_MIN <= number <= _INT32_MAX:
        raise _invalid(name, value, "Int32")
    return number


def param_bool(body: Mapping[str, Any], name: str, default: bool | None = None) -> bool:
    """A boolean parameter: ``true``/``false`` or their strings."""
    if name not in body or body[name] is None:
        if default is None:
            raise _missing(name)
        return default
    value = body[name]
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _invalid(name, value, "Boolean")

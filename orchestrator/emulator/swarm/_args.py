"""Route-argument binding as SwarmUI's API pipeline does it (specs/swarmui-api.md §1)."""

from __future__ import annotations

from typing import Any, Final

__all__ = ["REQUIRED", "RouteError", "arg_bool", "arg_int", "arg_str", "csharp_string"]

REQUIRED: Final = object()
"""Marks a route argument without a default: absent means ``Missing required parameter``."""

_INT32: Final = (-(2**31), 2**31 - 1)


class RouteError(Exception):
    """Raised by a route handler to answer HTTP 200 ``{"error": text}`` (plus ``error_id``)."""

    def __init__(self, text: str, error_id: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.error_id = error_id

    def body(self) -> dict[str, str]:
        """The JSON answer SwarmUI gives for this error."""
        answer = {"error": self.text}
        if self.error_id is not None:
            answer["error_id"] = self.error_id
        return answer


def csharp_string(value: Any) -> str:
    """How a JSON value reads after C#'s ``ToString()`` (booleans are ``True``/``False``).

    >>> csharp_string(True), csharp_string(5), csharp_string("x"), csharp_string(1.0)
    ('True', '5', 'x', '1.0')
    """
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


def _raw(body: dict[str, Any], name: str, default: object) -> tuple[bool, Any]:
    value = body.get(name)
    if value is None:
        if default is REQUIRED:
            raise RouteError(f"Missing required parameter '{name}'")
        return False, default
    return True, value


def _invalid(value: Any, name: str, type_name: str) -> RouteError:
    return RouteError(
        f"Invalid value '{csharp_string(value)}' for parameter '{name}', must be type '{type_name}'"
    )


def arg_int(body: dict[str, Any], name: str, default: object = REQUIRED) -> int:
    """Bind an ``Int32`` route argument (``"5"`` and ``5`` bind; ``1.0`` and ``true`` do not)."""
    present, value = _raw(body, name, default)
    if not present:
        assert isinstance(default, int)
        return default
    text = csharp_string(value).strip()
    try:
        number = int(text)
    except ValueError:
        raise _invalid(value, name, "Int32") from None
    if not _INT32[0] <= number <= _INT32[1]:
        raise _invalid(value, name, "Int32")
    return number


def arg_bool(body: dict[str, Any], name: str, default: object = REQUIRED) -> bool:
    """Bind a ``Boolean`` route argument (``true``, ``"True"``, ``"false"``; not ``1``)."""
    present, value = _raw(body, name, default)
    if not present:
        return bool(default)
    text = csharp_string(value).strip().lower()
    if text not in ("true", "false"):
        raise _invalid(value, name, "Boolean")
    return text == "true"


def arg_str(body: dict[str, Any], name: str, default: object = REQUIRED) -> str:
    """Bind a ``String`` route argument."""
    present, value = _raw(body, name, default)
    if not present:
        return str(default)
    return csharp_string(value)

"""Keeps secrets out of cassettes: keys, tokens and Authorization values never reach the file.

Three layers, applied to every recorded string before it is written:

1. by name: headers (``Authorization``, ``Cookie``, ``X-Api-Key``...), URL query parameters
   and JSON fields whose name says key, token, secret, password or authorization get the
   value ``[redacted]`` (a v2 lease's ``token`` output too; ``session_id`` is not a secret);
2. credentials in URLs (``https://user:pass@host``) are dropped;
3. by value: every secret learnt on the way (the backend key, each ``Authorization`` value and
   its bearer token, each value redacted by name) is replaced wherever else it appears — in
   bodies, URLs and WebSocket messages. Values shorter than :data:`MIN_SCRUBBED` characters
   are redacted where they are named but not searched for elsewhere (they would match inside
   image data by chance).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from yarl import URL

__all__ = ["MIN_SCRUBBED", "REDACTED", "Redactor", "is_secret_name"]

REDACTED: Final = "[redacted]"
MIN_SCRUBBED: Final = 8
_SECRET_NAMES: Final = frozenset(
    {"key", "apikey", "token", "secret", "password", "authorization", "cookie", "setcookie"}
)
_SECRET_ENDINGS: Final = ("apikey", "token", "secret", "password", "authorization")


def is_secret_name(name: str) -> bool:
    """Whether a header, query parameter or JSON field called ``name`` holds a secret.

    >>> [is_secret_name(n) for n in ("Authorization", "api_key", "token", "session_id")]
    [True, True, True, False]
    """
    folded = re.sub(r"[^a-z0-9]", "", name.lower())
    return folded in _SECRET_NAMES or folded.endswith(_SECRET_ENDINGS)


class Redactor:
    """Learns secrets, then scrubs them from everything a cassette holds.

    >>> redactor = Redactor(["rpa_0123456789"])
    >>> redactor.text("GET /status?x=1 with rpa_0123456789")
    'GET /status?x=1 with [redacted]'
    >>> redactor.headers({"Authorization": "Bearer abcdefghij", "Accept": "*/*"})
    {'Authorization': '[redacted]', 'Accept': '*/*'}
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        for secret in secrets:
            self.learn(secret)

    def learn(self, value: str) -> None:
        """Remember ``value`` (and the token of a ``Bearer <token>`` value) as a secret."""
        value = value.strip()
        scheme, _, token = value.partition(" ")
        if token and scheme.lower() in {"bearer", "basic", "token"}:
            self.learn(token)
        if value and value != REDACTED:
            self._secrets.add(value)

    def learn_from_headers(self, headers: Mapping[str, str]) -> None:
        """Learn the values of secret-named headers."""
        for name, value in headers.items():
            if is_secret_name(name):
                self.learn(value)

    def learn_from_url(self, url: str) -> None:
        """Learn secret-named query values and URL credentials."""
        parsed = URL(url)
        for name, value in parsed.query.items():
            if is_secret_name(name):
                self.learn(value)
        if parsed.password:
            self.learn(parsed.password)

    def learn_from_json(self, text: str) -> None:
        """Learn the values of secret-named fields anywhere in a JSON text (if it is JSON)."""
        data = _json_or_none(text)
        if data is not None:
            for value in _secret_values(data):
                self.learn(value)

    # --- scrubbing -------------------------------------------------------------------------

    def text(self, text: str) -> str:
        """``text`` with every learnt secret long enough to search for replaced."""
        for secret in sorted(self._secrets, key=len, reverse=True):
            if len(secret) >= MIN_SCRUBBED:
                text = text.replace(secret, REDACTED)
        return text

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """Headers with secret-named values redacted and secrets scrubbed from the rest."""
        return {
            name: REDACTED if is_secret_name(name) else self.text(value)
            for name, value in headers.items()
        }

    def url(self, url: str) -> str:
        """The URL without credentials, secret-named query values redacted, secrets scrubbed."""
        parsed = URL(url)
        if parsed.user is not None or parsed.password is not None:
            parsed = parsed.with_user(None)
        if any(is_secret_name(name) for name in parsed.query):
            parsed = parsed.with_query(
                [
                    (name, REDACTED if is_secret_name(name) else value)
                    for name, value in parsed.query.items()
                ]
            )
        return self.text(str(parsed))

    def body(self, text: str) -> str:
        """A JSON or plain text body with secret-named fields redacted and secrets scrubbed.

        A JSON body is re-encoded only when a field had to be redacted; otherwise the text is
        kept byte for byte.
        """
        data = _json_or_none(text)
        if data is not None and any(True for _ in _secret_values(data)):
            text = json.dumps(_redacted(data), ensure_ascii=False, separators=(",", ":"))
        return self.text(text)


def _json_or_none(text: str) -> Any:
    stripped = text.lstrip()
    if not stripped.startswith(("{", "[")):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _secret_values(data: Any) -> Iterable[str]:
    if isinstance(data, dict):
        for name, value in data.items():
            if is_secret_name(str(name)) and isinstance(value, str):
                yield value
            else:
                yield from _secret_values(value)
    elif isinstance(data, list):
        for item in data:
            yield from _secret_values(item)


def _redacted(data: Any) -> Any:
    if isinstance(data, dict):
        return {
            name: REDACTED
            if is_secret_name(str(name)) and isinstance(value, str)
            else _redacted(value)
            for name, value in data.items()
        }
    if isinstance(data, list):
        return [_redacted(item) for item in data]
    return data

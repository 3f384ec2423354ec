"""A PostgreSQL connection URL that never shows its password."""

from __future__ import annotations

from typing import Final
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["DatabaseUrl"]

_SCHEMES: Final = frozenset({"postgresql", "postgres"})
# libpq parameters that are secrets, or point at one: never shown.
_SECRET_PARAMS: Final = frozenset({"password", "sslpassword", "passfile", "sslkey"})


class DatabaseUrl:
    """``postgresql://user:password@host:port/database?param=value``, checked at load.

    ``str``, ``repr`` and :attr:`shown` never contain the password (nor libpq's ``password``
    or ``sslpassword`` parameters); :meth:`reveal` gives the URL to the driver.

    >>> url = DatabaseUrl("postgresql://swarm:s3cret@db:5432/swarmpod?sslmode=require")
    >>> url
    DatabaseUrl('postgresql://swarm@db:5432/swarmpod?sslmode=require')
    >>> DatabaseUrl("mysql://db/x")
    Traceback (most recent call last):
    ...
    ValueError: must be a postgresql:// URL (postgresql://user:password@host:5432/database), \
got a mysql:// one

    Raises:
        ValueError: it is not a ``postgresql://`` (or ``postgres://``) URL, or its port is
            not a number. The message never repeats the URL (it may hold a password).
    """

    __slots__ = ("_shown", "_value")

    def __init__(self, value: str) -> None:
        text = value.strip()
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018 - raises ValueError on a port that is not a number
        except ValueError:
            raise ValueError(
                "is not a valid URL (postgresql://user:password@host:5432/database)"
            ) from None
        if parts.scheme.lower() not in _SCHEMES:
            found = f"a {parts.scheme}:// one" if parts.scheme else "no scheme"
            raise ValueError(
                "must be a postgresql:// URL (postgresql://user:password@host:5432/database), "
                f"got {found}"
            )
        if not (parts.hostname or parts.path.strip("/") or parts.query):
            raise ValueError(
                "names no server and no database (postgresql://user:password@host:5432/database)"
            )
        self._value = text
        self._shown = _without_secrets(parts)

    @property
    def shown(self) -> str:
        """The URL without its password, for logs and messages."""
        return self._shown

    def reveal(self) -> str:
        """The URL itself, password included; only for the driver."""
        return self._value

    def __str__(self) -> str:
        return self._shown

    def __repr__(self) -> str:
        return f"DatabaseUrl({self._shown!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DatabaseUrl) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("DatabaseUrl", self._value))


def _without_secrets(parts: SplitResult) -> str:
    netloc = parts.netloc.rpartition("@")[2]
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    query = urlencode(
        [(k, v) for k, v in parse_qsl(parts.query) if k.lower() not in _SECRET_PARAMS],
        safe="/",
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))

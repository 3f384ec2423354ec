"""Secrets (RunPod keys, worker tokens) that never show themselves."""

from __future__ import annotations

import hashlib
from typing import Final

from observability import register_secret

__all__ = ["Secret"]

_MASK: Final = "********"


class Secret:
    """A secret string whose ``str``/``repr``/format never reveal it.

    >>> key = Secret("rpa_ABCDEF")
    >>> key
    Secret('********')
    >>> f"{key}"
    '********'
    >>> key.reveal()
    'rpa_ABCDEF'

    ``fingerprint`` gives a short, stable, non-reversible id for logs and journals. A secret
    is also registered with the log redaction filter, so a value that slips into a log
    message anyway is written as ``[REDACTED]``; ``ephemeral`` ones (a lease's bearer token,
    made per worker and never logged) are not, so a long-running service does not collect
    one per lease: their ``Bearer …`` shape is redacted anyway.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str, *, ephemeral: bool = False) -> None:
        self._value = value
        if not ephemeral:
            register_secret(value)

    def reveal(self) -> str:
        """Return the secret itself; call only where it goes on the wire."""
        return self._value

    @property
    def fingerprint(self) -> str:
        """First 8 hex chars of the SHA-256 of the secret (safe to log)."""
        return hashlib.sha256(self._value.encode()).hexdigest()[:8]

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __repr__(self) -> str:
        return f"Secret('{_MASK}')"

    def __str__(self) -> str:
        return _MASK

    def __format__(self, spec: str) -> str:
        return _MASK

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("Secret values are not picklable")

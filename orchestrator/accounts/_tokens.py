"""API tokens: how they are made, hashed for storage, and described (never shown again).

A token is ``sp_`` and 32 random bytes (url-safe base64). Only its SHA-256 is stored. A fast
hash is right here: a salted slow hash (bcrypt, scrypt) protects *guessable* secrets such as
passwords, while a 256-bit random token cannot be guessed from its hash at any speed.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Final

from ..secrets import Secret

__all__ = ["TokenInfo", "hash_token", "new_token", "new_token_id"]

PREFIX: Final = "sp_"


@dataclass(frozen=True)
class TokenInfo:
    """What is known of an issued token: never the token itself.

    Attributes:
        id: its id (to revoke it: ``swarmpod users revoke NAME ID``).
        label: what it was issued for.
        created_at: when it was issued (``yyyy-MM-dd HH:mm``, UTC).
        last_used_at: when it last authenticated a request (same format), None if never.
    """

    id: str
    label: str
    created_at: str
    last_used_at: str | None


def new_token() -> Secret:
    """A new random token.

    >>> new_token().reveal().startswith("sp_")
    True
    """
    return Secret(PREFIX + secrets.token_urlsafe(32))


def new_token_id() -> str:
    """A new token id (not secret: it is listed and names the token to revoke)."""
    return secrets.token_hex(6)


def hash_token(token: str) -> str:
    """The stored form of a token: its SHA-256, in hex.

    >>> len(hash_token("sp_x"))
    64
    """
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()

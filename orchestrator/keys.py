"""Which RunPod key a generation uses: the backend's, else the calling user's (the seed's rule)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from .errors import MissingApiKeyError
from .secrets import Secret

__all__ = ["KeyProvider", "StaticKeys", "resolve_runpod_key"]


class KeyProvider(Protocol):
    """Looks up a user's own RunPod key (the service backs this with its encrypted store)."""

    async def runpod_key(self, user: str) -> Secret | None:
        """The user's RunPod key, or None when the user has set none."""
        ...


class StaticKeys:
    """A fixed mapping of user → key, for embedding and tests.

    >>> StaticKeys({"ada": "rpa_1", "bob": "rpa_2"})
    StaticKeys(users=['ada', 'bob'])
    """

    def __init__(self, keys: Mapping[str, str | Secret]) -> None:
        self._keys = {
            user: key if isinstance(key, Secret) else Secret(key) for user, key in keys.items()
        }

    async def runpod_key(self, user: str) -> Secret | None:
        """The key stored for ``user``, if any."""
        return self._keys.get(user)

    def __repr__(self) -> str:
        return f"StaticKeys(users={sorted(self._keys)})"


async def resolve_runpod_key(
    backend_key: Secret | None, user: str | None, provider: KeyProvider | None
) -> Secret:
    """The backend key when set, else the user's own key; never another user's.

    Raises:
        MissingApiKeyError: neither exists.
    """
    if backend_key:
        return backend_key
    if user is not None and provider is not None:
        key = await provider.runpod_key(user)
        if key:
            return key
    raise MissingApiKeyError(user)

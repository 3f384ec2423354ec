"""The v2 worker gateway: a bearer-token check in front of a worker's SwarmUI (worker-protocols v2).

The v2 worker image puts its SwarmUI behind a gateway that admits only the current lease's
token, sent as ``Authorization: Bearer <token>``; the image installs a fresh token per lease and
revokes it when the lease ends.
"""

from __future__ import annotations

import hmac
from typing import Literal

__all__ = ["Gateway", "GatewayState"]

GatewayState = Literal["off", "open", "closed"]
"""``off``: no gateway; ``open``: one token is admitted; ``closed``: nobody is admitted."""


class Gateway:
    """The gateway's runtime state: off until a token is set, then open or closed.

    >>> gateway = Gateway()
    >>> gateway.set_token("t0k3n")
    >>> gateway.admits("Bearer t0k3n"), gateway.admits("Bearer other"), gateway.admits(None)
    (True, False, False)
    >>> gateway.set_token(None)
    >>> gateway.state, gateway.admits("Bearer t0k3n")
    ('closed', False)
    >>> gateway
    Gateway(state='closed')
    """

    def __init__(self) -> None:
        self._on = False
        self._token: str | None = None

    def __repr__(self) -> str:
        return f"Gateway(state={self.state!r})"

    @property
    def state(self) -> GatewayState:
        """``off``, ``open`` or ``closed`` (see :data:`GatewayState`)."""
        if not self._on:
            return "off"
        return "closed" if self._token is None else "open"

    def set_token(self, token: str | None) -> None:
        """Admit only ``token`` from now on (None: admit nobody).

        Raises:
            ValueError: ``token`` is empty.
        """
        if token is not None and not token:
            raise ValueError("a gateway token must not be empty")
        self._on = True
        self._token = token

    def remove(self) -> None:
        """Turn the gateway off (every request passes it)."""
        self._on = False
        self._token = None

    def admits(self, authorization: str | None) -> bool:
        """Whether a request with this ``Authorization`` header value passes (True when off)."""
        if not self._on:
            return True
        if self._token is None or authorization is None:
            return False
        return hmac.compare_digest(authorization.encode(), f"Bearer {self._token}".encode())

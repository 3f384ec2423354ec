"""The master key that encrypts the RunPod keys at rest (Fernet), and where it comes from.

The key is ``SWARMPOD_MASTER_KEY`` when that is set, else a key file (``<database>.key`` by
default) created 0600 at first start and reused after. Each database keeps a *canary*, a
known text encrypted with its master key at first start; every later start decrypts it, so
a wrong key (the variable changed, the file replaced) fails at start, not at the first
generation that needs a user's key. A key file other users may read or write (any group or
other permission bit) is refused, as ssh refuses such a private key.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from .._extras import MissingExtraError
from ..errors import MasterKeyError

try:
    from cryptography.fernet import Fernet, InvalidToken
except ModuleNotFoundError as missing:  # the `service` extra
    raise MissingExtraError("service", "swarmpod user accounts", "cryptography") from missing

__all__ = ["ENV_VAR", "MasterKey", "load_master_key"]

log = logging.getLogger("swarmpod.accounts")

ENV_VAR: Final = "SWARMPOD_MASTER_KEY"
CANARY: Final = b"swarmpod accounts master-key canary v1"

_GENERATE: Final = (
    "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
)


class MasterKey:
    """A Fernet master key and where it came from; it never shows the key.

    Attributes:
        source: ``env SWARMPOD_MASTER_KEY`` or ``key file <path>``.
    """

    __slots__ = ("_fernet", "source")

    def __init__(self, fernet: Fernet, source: str) -> None:
        self._fernet = fernet
        self.source = source

    def __repr__(self) -> str:
        return f"MasterKey(source={self.source!r})"

    def encrypt(self, data: bytes) -> bytes:
        """``data`` encrypted (and authenticated) with the master key."""
        return self._fernet.encrypt(data)

    def decrypt(self, token: bytes) -> bytes | None:
        """What ``token`` holds, or None when this master key did not encrypt it."""
        try:
            return self._fernet.decrypt(token)
        except InvalidToken:
            return None

    def new_canary(self) -> bytes:
        """The canary a new database keeps, to recognise its master key at later starts."""
        return self.encrypt(CANARY)

    def check_canary(
        self, canary: bytes, database: Path | str, *, start_over: str | None = None
    ) -> None:
        """Make sure this is the key the database's keys were encrypted with.

        Args:
            canary: the database's canary.
            database: the database, as named in messages.
            start_over: how to start over without its keys (default: move the file aside).

        Raises:
            MasterKeyError: it is not.
        """
        if self.decrypt(canary) != CANARY:
            raise MasterKeyError(
                f"The master key from {self.source} does not decrypt this database's keys "
                f"({database}): it is not the key they were encrypted with. Restore that key "
                f"(set {ENV_VAR} back, or put the original key file back); or, to start over, "
                f"{start_over or f'move {database} aside'}: its users, tokens and RunPod keys "
                "are then lost.",
                source=self.source,
            )


def load_master_key(
    env: Mapping[str, str], key_file: Path | None, *, database: Path | str, may_create: bool
) -> MasterKey:
    """The master key: ``SWARMPOD_MASTER_KEY`` if set (non-empty), else ``key_file``.

    Args:
        env: the environment to read ``SWARMPOD_MASTER_KEY`` from.
        key_file: the key file used when the variable is not set; None for a database
            shared by replicas (PostgreSQL), where every replica needs the variable.
        database: the accounts database (named in messages).
        may_create: whether a missing key file may be created (only for a database that
            holds no encrypted data yet; else a missing file means the key is lost).

    Raises:
        MasterKeyError: the key is malformed, or the key file is missing or unreadable.
    """
    raw = env.get(ENV_VAR, "").strip()
    if raw:
        return _parse(raw.encode(), f"env {ENV_VAR}", advice=f"or unset {ENV_VAR}")
    if key_file is None:
        raise MasterKeyError(
            f"{database} is shared by every replica: each needs the same master key, from "
            f"{ENV_VAR} (no key file is made for a shared database). Set it on every replica"
            f"{'' if may_create else ' to the key the stored RunPod keys were encrypted with'}"
            f"; a new key is made with: {_GENERATE}",
            source=f"env {ENV_VAR}",
        )
    source = f"key file {key_file}"
    if not key_file.exists():
        if not may_create:
            raise MasterKeyError(
                f"The {source} is missing, but {database} holds keys encrypted with it. "
                f"Restore the key file from your backup (or set {ENV_VAR} to that key); or, "
                f"to start over, move {database} aside: its users, tokens and RunPod keys "
                "are then lost.",
                source=source,
            )
        _create_key_file(key_file)
    try:
        mode = key_file.stat().st_mode
        content = key_file.read_bytes()
    except OSError as exc:
        raise MasterKeyError(
            f"The {source} cannot be read ({exc.strerror or exc}); make it readable by the "
            f"user swarmpod runs as (mode 0600), or set {ENV_VAR}.",
            source=source,
        ) from None
    if stat.S_IMODE(mode) & 0o077:
        raise MasterKeyError(
            f"The master {source} is open to other users (mode {stat.S_IMODE(mode):04o}): "
            f"anyone who can read it can decrypt every stored RunPod key. Run: chmod 600 "
            f"{key_file} (and rotate the keys if others may have read it), or set {ENV_VAR}.",
            source=source,
        )
    return _parse(content.strip(), source, advice="or move the file aside on a new database")


def _parse(raw: bytes, source: str, *, advice: str) -> MasterKey:
    """The key in ``raw``; the error names ``source``, never the value."""
    try:
        return MasterKey(Fernet(raw), source)
    except (ValueError, TypeError):
        raise MasterKeyError(
            f"The master key from {source} is not a Fernet key (32 bytes in url-safe base64, "
            f"44 characters). Put the right key there ({advice}); a new key is made with: "
            f"{_GENERATE}",
            source=source,
        ) from None


def _create_key_file(key_file: Path) -> None:
    """Write a new random key to ``key_file``, 0600, failing if it exists (another start won
    the race: its key is then used)."""
    key_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(key_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "wb") as handle:
        handle.write(Fernet.generate_key() + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    directory = os.open(key_file.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the key must outlive a crash before anything is encrypted with it
    finally:
        os.close(directory)
    log.info("created the master key file %s (mode 0600); back it up", key_file)

"""Users, API tokens and per-user RunPod keys in one SQLite file.

Tokens are stored only as SHA-256 hashes: they are 256-bit random strings, so a fast hash is
enough (nothing to brute-force). RunPod keys are encrypted with Fernet under a master key from
``SWARMPOD_MASTER_KEY`` or a 0600 key file beside the database, created on first start. The
database keeps a canary encrypted at its first start; a later start whose master key cannot
decrypt it fails at once (:class:`MasterKeyError`) instead of failing on the first key it needs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import re
import secrets
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography.fernet import Fernet, InvalidToken

from ..errors import AccountError, MasterKeyError
from ..secrets import Secret
from ._roles import Role, User

__all__ = ["Accounts", "TokenInfo"]

_NAME: Final = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_CANARY: Final = b"swarmpod-master-key-canary"
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, role TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY, user TEXT NOT NULL, hash TEXT NOT NULL UNIQUE, label TEXT NOT NULL,
    created_at TEXT NOT NULL, last_used_at TEXT
);
CREATE TABLE IF NOT EXISTS runpod_keys (
    user TEXT PRIMARY KEY, encrypted BLOB NOT NULL, updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
"""


@dataclass(frozen=True)
class TokenInfo:
    """What is known of an issued token (never the token).

    Attributes:
        id: its id (for revoking it).
        label: what it is for.
        created_at: when it was issued (UTC).
        last_used_at: when it last authenticated a request, if ever.
    """

    id: str
    label: str
    created_at: str
    last_used_at: str | None


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _fernet(env: Mapping[str, str], key_file: Path) -> tuple[Fernet, str]:
    """The master key's cipher and where the key came from."""
    if env.get("SWARMPOD_MASTER_KEY"):
        source = "env SWARMPOD_MASTER_KEY"
        raw = env["SWARMPOD_MASTER_KEY"].strip().encode()
    else:
        source = f"key file {key_file}"
        if not key_file.exists():
            key_file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(key_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(Fernet.generate_key())
        raw = key_file.read_bytes().strip()
    try:
        return Fernet(raw), source
    except (ValueError, TypeError):
        raise MasterKeyError(
            f"The master key from {source} is not a Fernet key (32 url-safe base64 bytes); "
            "generate one with: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'",
            source=source,
        ) from None


class Accounts:
    """Users, roles, API tokens and per-user RunPod keys in one SQLite file (0600).

    Use :meth:`open`. It implements :class:`orchestrator.keys.KeyProvider`.
    """

    def __init__(self, db: sqlite3.Connection, cipher: Fernet, path: str) -> None:
        self._db = db
        self._cipher = cipher
        self.path = path

    def __repr__(self) -> str:
        return f"Accounts({self.path!r})"

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        env: Mapping[str, str] | None = None,
        key_file: str | os.PathLike[str] | None = None,
    ) -> Accounts:
        """Open (or create) the accounts database and check its master key.

        Raises:
            MasterKeyError: the master key is malformed, or does not decrypt this database.
        """
        file = Path(path)
        cipher, source = _fernet(
            os.environ if env is None else env,
            Path(key_file) if key_file is not None else file.with_name(file.name + ".key"),
        )
        file.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(file, os.O_CREAT | os.O_RDWR, 0o600))
        db = sqlite3.connect(file, isolation_level=None)
        db.executescript(_SCHEMA)
        row = db.execute("SELECT value FROM meta WHERE name = 'canary'").fetchone()
        if row is None:
            db.execute("INSERT INTO meta VALUES ('canary', ?)", (cipher.encrypt(_CANARY),))
        else:
            try:
                ok = cipher.decrypt(bytes(row[0])) == _CANARY
            except InvalidToken:
                ok = False
            if not ok:
                db.close()
                raise MasterKeyError(
                    f"The master key from {source} does not decrypt the keys in {file}: it is "
                    "not the key they were stored with. Restore that key (SWARMPOD_MASTER_KEY or "
                    "the key file), or move the database aside to start over.",
                    source=source,
                )
        return cls(db, cipher, str(file))

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    # --- users ------------------------------------------------------------------------------

    def add_user(self, name: str, role: Role = Role.USER) -> User:
        """Add a user.

        Raises:
            AccountError: the name is not 1-64 of ``A-Za-z0-9_.@-``, or taken.
        """
        if not _NAME.match(name):
            raise AccountError(
                f"User name {name!r} is not allowed: use 1-64 letters, digits, or _ . @ -",
                user=name,
            )
        if self.get_user(name) is not None:
            raise AccountError(f"User '{name}' exists already.", user=name)
        self._db.execute("INSERT INTO users VALUES (?, ?)", (name, Role(role).value))
        return User(name, Role(role))

    def get_user(self, name: str) -> User | None:
        """The user ``name``, if any."""
        row = self._db.execute("SELECT name, role FROM users WHERE name = ?", (name,)).fetchone()
        return User(row[0], Role(row[1])) if row else None

    def list_users(self) -> list[User]:
        """Every user, by name."""
        rows = self._db.execute("SELECT name, role FROM users ORDER BY name").fetchall()
        return [User(name, Role(role)) for name, role in rows]

    def set_role(self, name: str, role: Role) -> User:
        """Give ``name`` another role."""
        self._require(name)
        self._db.execute("UPDATE users SET role = ? WHERE name = ?", (Role(role).value, name))
        return User(name, Role(role))

    def remove_user(self, name: str) -> None:
        """Remove a user with their tokens and key."""
        self._require(name)
        for table, column in (("tokens", "user"), ("runpod_keys", "user"), ("users", "name")):
            self._db.execute(f"DELETE FROM {table} WHERE {column} = ?", (name,))

    # --- tokens -----------------------------------------------------------------------------

    def issue_token(self, name: str, *, label: str = "") -> Secret:
        """A new API token for ``name``: shown once, stored only as a hash."""
        self._require(name)
        token = "sp_" + secrets.token_urlsafe(32)
        self._db.execute(
            "INSERT INTO tokens VALUES (?, ?, ?, ?, ?, NULL)",
            (secrets.token_hex(4), name, _hash(token), label, _now()),
        )
        return Secret(token)

    def list_tokens(self, name: str) -> list[TokenInfo]:
        """The tokens of ``name`` (never the tokens themselves)."""
        rows = self._db.execute(
            "SELECT id, label, created_at, last_used_at FROM tokens WHERE user = ? "
            "ORDER BY created_at",
            (name,),
        ).fetchall()
        return [TokenInfo(*row) for row in rows]

    def revoke_token(self, name: str, token_id: str) -> bool:
        """Revoke one token; whether it existed."""
        cursor = self._db.execute("DELETE FROM tokens WHERE user = ? AND id = ?", (name, token_id))
        return cursor.rowcount > 0

    def authenticate(self, token: str) -> User | None:
        """The user a token belongs to, if it is valid."""
        digest = _hash(token)
        row = self._db.execute("SELECT id, user, hash FROM tokens WHERE hash = ?", (digest,))
        found = row.fetchone()
        if found is None or not hmac.compare_digest(found[2], digest):
            return None
        self._db.execute("UPDATE tokens SET last_used_at = ? WHERE id = ?", (_now(), found[0]))
        return self.get_user(found[1])

    # --- RunPod keys ------------------------------------------------------------------------

    def set_runpod_key(self, name: str, key: Secret | None) -> None:
        """Store ``name``'s own RunPod key, encrypted; None deletes it."""
        self._require(name)
        if key is None:
            self._db.execute("DELETE FROM runpod_keys WHERE user = ?", (name,))
            return
        encrypted = self._cipher.encrypt(key.reveal().encode())
        self._db.execute(
            "INSERT INTO runpod_keys VALUES (?, ?, ?) ON CONFLICT (user) DO UPDATE SET "
            "encrypted = excluded.encrypted, updated_at = excluded.updated_at",
            (name, encrypted, _now()),
        )

    def runpod_key_status(self, name: str) -> str:
        """``last updated <time>`` or ``not set`` (SwarmUI's ``GetAPIKeyStatus`` texts)."""
        row = self._db.execute(
            "SELECT updated_at FROM runpod_keys WHERE user = ?", (name,)
        ).fetchone()
        return f"last updated {row[0]}" if row else "not set"

    async def runpod_key(self, user: str) -> Secret | None:
        """``user``'s own RunPod key (KeyProvider), decrypted; never another user's."""
        row = self._db.execute(
            "SELECT encrypted FROM runpod_keys WHERE user = ?", (user,)
        ).fetchone()
        if row is None:
            return None
        return Secret(self._cipher.decrypt(bytes(row[0])).decode())

    def _require(self, name: str) -> None:
        if self.get_user(name) is None:
            raise AccountError(f"There is no user '{name}'.", user=name)

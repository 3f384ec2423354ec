"""The :class:`Accounts` store: users, API tokens and per-user RunPod keys in one SQLite file.

Tokens are stored only as hashes (``_tokens``); RunPod keys are encrypted with the master key
(``_master_key``) together with their owner's name, so a key copied to another user's row
does not decrypt for that user. Times are UTC, ``yyyy-MM-dd HH:mm`` as SwarmUI writes them.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import os
import re
import sqlite3
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Final

from ..errors import AccountError
from ..secrets import Secret
from ._database import connect, read_meta, transaction
from ._master_key import MasterKey, load_master_key
from ._roles import Role, User
from ._tokens import TokenInfo, hash_token, new_token, new_token_id

__all__ = ["Accounts"]

log = logging.getLogger("swarmpod.accounts")

_NAME: Final = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
_MAX_LABEL: Final = 200


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Accounts:
    """Users, roles, API tokens and per-user RunPod keys in one SQLite file (0600).

    Open it with :meth:`open`. It is the service's :class:`orchestrator.keys.KeyProvider`:
    :meth:`runpod_key` gives a user their own key, never another user's.
    """

    def __init__(
        self,
        db: sqlite3.Connection,
        master: MasterKey,
        path: Path,
        clock: Callable[[], dt.datetime],
    ) -> None:
        """Use :meth:`open`."""
        self._db = db
        self._master = master
        self._clock = clock
        self.path = path

    def __repr__(self) -> str:
        return f"Accounts({str(self.path)!r}, master_key={self._master.source!r})"

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        env: Mapping[str, str] | None = None,
        key_file: str | os.PathLike[str] | None = None,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> Accounts:
        """Open (or create) the accounts database and check its master key.

        Args:
            path: the SQLite file (created 0600 with its directory).
            env: where to read ``SWARMPOD_MASTER_KEY`` (default: ``os.environ``).
            key_file: the master key file used when the variable is not set (default:
                ``<path>.key``; created 0600 for a new database).
            clock: the current time (UTC, timezone-aware), for tests.

        Raises:
            MasterKeyError: the master key is malformed, missing, or does not decrypt this
                database's keys.
        """
        file = Path(path)
        db = connect(file)
        try:
            canary = read_meta(db, "canary")
            master = load_master_key(
                os.environ if env is None else env,
                Path(key_file) if key_file is not None else file.with_name(file.name + ".key"),
                database=file,
                may_create=canary is None,
            )
            if canary is None:
                # two first starts at once: the first canary wins, the other start checks it
                db.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('canary', ?)", (master.new_canary(),)
                )
                canary = read_meta(db, "canary")
                assert canary is not None
            master.check_canary(canary, file)
        except BaseException:
            db.close()
            raise
        return cls(db, master, file, clock or _utc_now)

    def close(self) -> None:
        """Close the database (closing twice is harmless)."""
        self._db.close()

    def __enter__(self) -> Accounts:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- users ------------------------------------------------------------------------------

    def add_user(self, name: str, role: Role = Role.USER) -> User:
        """Add a user.

        Raises:
            AccountError: the name is not 1-64 of ``A-Za-z0-9_.@-``, or it is taken (also by
                a name that differs only in case).
        """
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise AccountError(
                f"The user name {name!r} is not allowed: use 1 to 64 letters, digits, "
                "'_', '.', '@' or '-'.",
                user=str(name),
            )
        user = User(name, Role(role))
        with transaction(self._db):
            taken = self._db.execute(
                "SELECT name FROM users WHERE name = ? COLLATE NOCASE", (name,)
            ).fetchone()
            if taken is not None:
                same = "" if taken[0] == name else f" (as '{taken[0]}')"
                raise AccountError(
                    f"The user '{name}' exists already{same}; pick another name, or change "
                    f"their role with: swarmpod users role {taken[0]} ROLE",
                    user=name,
                )
            self._db.execute("INSERT INTO users VALUES (?, ?)", (name, user.role.value))
        return user

    def get_user(self, name: str) -> User | None:
        """The user ``name`` (exact spelling), if there is one."""
        row = self._db.execute("SELECT name, role FROM users WHERE name = ?", (name,)).fetchone()
        return User(row[0], Role(row[1])) if row else None

    def list_users(self) -> list[User]:
        """Every user, by name."""
        rows = self._db.execute("SELECT name, role FROM users ORDER BY name").fetchall()
        return [User(name, Role(role)) for name, role in rows]

    def set_role(self, name: str, role: Role) -> User:
        """Give ``name`` another role.

        Raises:
            AccountError: there is no such user.
        """
        user = User(name, Role(role))
        cursor = self._db.execute(
            "UPDATE users SET role = ? WHERE name = ?", (user.role.value, name)
        )
        if cursor.rowcount == 0:
            raise self._unknown(name)
        return user

    def remove_user(self, name: str) -> None:
        """Remove a user with their tokens and RunPod key.

        Raises:
            AccountError: there is no such user.
        """
        with transaction(self._db):
            self._db.execute("DELETE FROM tokens WHERE user = ?", (name,))
            self._db.execute("DELETE FROM runpod_keys WHERE user = ?", (name,))
            if self._db.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount == 0:
                raise self._unknown(name)

    # --- tokens -----------------------------------------------------------------------------

    def issue_token(self, name: str, *, label: str = "") -> Secret:
        """A new API token for ``name``. It is returned once and stored only as its hash.

        Raises:
            AccountError: there is no such user, or the label is longer than 200 characters.
        """
        if len(label) > _MAX_LABEL:
            raise AccountError(
                f"The token label is {len(label)} characters long; keep it to {_MAX_LABEL}.",
                user=name,
            )
        token = new_token()
        with transaction(self._db):
            self._require(name)
            self._db.execute(
                "INSERT INTO tokens VALUES (?, ?, ?, ?, ?, NULL)",
                (new_token_id(), name, hash_token(token.reveal()), label, self._now()),
            )
        return token

    def list_tokens(self, name: str) -> list[TokenInfo]:
        """The tokens of ``name``, oldest first (never the tokens themselves).

        Raises:
            AccountError: there is no such user.
        """
        self._require(name)
        rows = self._db.execute(
            "SELECT id, label, created_at, last_used_at FROM tokens WHERE user = ? ORDER BY rowid",
            (name,),
        ).fetchall()
        return [TokenInfo(*row) for row in rows]

    def revoke_token(self, name: str, token_id: str) -> bool:
        """Revoke one of ``name``'s tokens; whether it existed.

        Raises:
            AccountError: there is no such user.
        """
        with transaction(self._db):
            self._require(name)
            cursor = self._db.execute(
                "DELETE FROM tokens WHERE user = ? AND id = ?", (name, token_id)
            )
        return cursor.rowcount > 0

    def authenticate(self, token: str | Secret) -> User | None:
        """The user a token belongs to, or None when it is not a valid token.

        Records when the token was last used (at most one write a minute per token).
        """
        text = token.reveal() if isinstance(token, Secret) else token
        if not text:
            return None
        digest = hash_token(text)
        row = self._db.execute(
            "SELECT tokens.id, tokens.hash, tokens.last_used_at, users.name, users.role "
            "FROM tokens JOIN users ON users.name = tokens.user WHERE tokens.hash = ?",
            (digest,),
        ).fetchone()
        # The lookup is by hash, so its timing tells nothing about the token; the constant-
        # time compare keeps the final check free of timing leaks all the same.
        if row is None or not hmac.compare_digest(row[1], digest):
            return None
        now = self._now()
        if row[2] != now:
            self._db.execute("UPDATE tokens SET last_used_at = ? WHERE id = ?", (now, row[0]))
        return User(row[3], Role(row[4]))

    # --- RunPod keys ------------------------------------------------------------------------

    def set_runpod_key(self, name: str, key: Secret | None) -> None:
        """Store ``name``'s own RunPod key, encrypted; None deletes it.

        Raises:
            AccountError: there is no such user, or the key is empty or has whitespace.
        """
        if key is not None and (not key or any(c.isspace() for c in key.reveal())):
            raise AccountError(
                f"The RunPod key given for '{name}' is empty or has whitespace; give the key "
                "itself (from the RunPod console, Settings → API Keys), or None to delete it.",
                user=name,
            )
        with transaction(self._db):
            self._require(name)
            if key is None:
                self._db.execute("DELETE FROM runpod_keys WHERE user = ?", (name,))
                return
            sealed = self._master.encrypt(f"{name}\n{key.reveal()}".encode())
            self._db.execute(
                "INSERT INTO runpod_keys VALUES (?, ?, ?) ON CONFLICT (user) DO UPDATE SET "
                "encrypted = excluded.encrypted, key_last_updated = excluded.key_last_updated",
                (name, sealed, self._now()),
            )

    def runpod_key_status(self, name: str) -> str:
        """``last updated yyyy-MM-dd HH:mm`` or ``not set`` (SwarmUI's ``GetAPIKeyStatus``).

        Raises:
            AccountError: there is no such user.
        """
        self._require(name)
        row = self._db.execute(
            "SELECT key_last_updated FROM runpod_keys WHERE user = ?", (name,)
        ).fetchone()
        return f"last updated {row[0]}" if row else "not set"

    async def runpod_key(self, user: str) -> Secret | None:
        """``user``'s own RunPod key, decrypted (:class:`~orchestrator.keys.KeyProvider`).

        Returns None when the user has set none (or does not exist).

        Raises:
            AccountError: the stored key does not decrypt, or was sealed for another user
                (the database was altered).
        """
        return self._runpod_key(user)

    def _runpod_key(self, user: str) -> Secret | None:
        row = self._db.execute(
            "SELECT encrypted FROM runpod_keys WHERE user = ?", (user,)
        ).fetchone()
        if row is None:
            return None
        plain = self._master.decrypt(bytes(row[0]))
        owner, _, key = (plain or b"").decode().partition("\n")
        if owner != user:  # it does not decrypt, or was sealed for another user
            raise AccountError(
                f"The stored RunPod key of '{user}' cannot be used: the database was altered "
                f"after the key was stored. Set the key again: swarmpod users set-key {user}",
                user=user,
            )
        return Secret(key)

    def stored_runpod_keys(self) -> list[Secret]:
        """Every user's own RunPod key, decrypted (to cancel the leases a crashed service left
        open with them). A key that does not decrypt for its user is skipped and logged.
        """
        keys: list[Secret] = []
        for (user,) in self._db.execute("SELECT user FROM runpod_keys ORDER BY user").fetchall():
            try:
                key = self._runpod_key(user)
            except AccountError as exc:
                log.warning("[RunPodServerless] %s", exc)
                continue
            if key is not None:
                keys.append(key)
        return keys

    # --- helpers ----------------------------------------------------------------------------

    def _now(self) -> str:
        return self._clock().astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M")

    def _require(self, name: str) -> None:
        if self._db.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone() is None:
            raise self._unknown(name)

    @staticmethod
    def _unknown(name: str) -> AccountError:
        return AccountError(
            f"There is no user '{name}'; see the users with: swarmpod users list",
            user=name,
        )

"""The :class:`Accounts` store: users, API tokens and per-user RunPod keys, in their SQLite
file or in the PostgreSQL database replicas share.

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
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Final

from ..errors import AccountError
from ..secrets import Secret
from ..store import Statements, StateStore
from ._database import open_accounts, read_meta
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
    """Users, roles, API tokens and per-user RunPod keys, in the state store.

    Open it with :meth:`open` (``async with await Accounts.open(...) as accounts``). It is the
    service's :class:`orchestrator.keys.KeyProvider`: :meth:`runpod_key` gives a user their
    own key, never another user's. Several replicas sharing a PostgreSQL database share the
    users, tokens and keys (encrypted with the master key they all have).

    Attributes:
        store: where the accounts are kept.
        path: the SQLite file, or None in a shared database.
    """

    def __init__(
        self,
        store: StateStore,
        master: MasterKey,
        clock: Callable[[], dt.datetime],
        *,
        path: Path | None = None,
        owns_store: bool = False,
    ) -> None:
        """Use :meth:`open`."""
        self.store = store
        self._master = master
        self._clock = clock
        self.path = path
        self._owns_store = owns_store

    def __repr__(self) -> str:
        return f"Accounts({self.store.description!r}, master_key={self._master.source!r})"

    @classmethod
    async def open(
        cls,
        where: StateStore | str | os.PathLike[str],
        *,
        env: Mapping[str, str] | None = None,
        key_file: str | os.PathLike[str] | None = None,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> Accounts:
        """Open (or create) the accounts and check their master key.

        Args:
            where: the SQLite file (created 0600 with its directory), or a store (the
                PostgreSQL database replicas share).
            env: where to read ``SWARMPOD_MASTER_KEY`` from (default: ``os.environ``).
            key_file: the master key file used when the variable is not set (default:
                ``<path>.key`` beside a SQLite file, created 0600 for a new database; none
                for a shared database, where every replica needs the variable).
            clock: the current time (UTC, timezone-aware), for tests.

        Raises:
            MasterKeyError: the master key is malformed, missing, or does not decrypt these
                accounts' keys.
            StateFileError: the SQLite file is unusable (left untouched).
            SchemaTooNewError: a newer swarmpod migrated the accounts.
        """
        store, owns = await open_accounts(where)
        path = Path(where) if isinstance(where, str | os.PathLike) else None
        try:
            canary = await read_meta(store, "canary")
            if key_file is not None:
                chosen_key_file: Path | None = Path(key_file)
            elif path is not None:
                chosen_key_file = path.with_name(path.name + ".key")
            else:
                chosen_key_file = None
            named: Path | str = path if path is not None else store.description
            master = load_master_key(
                os.environ if env is None else env,
                chosen_key_file,
                database=named,
                may_create=canary is None,
            )
            if canary is None:
                # two first starts at once: the first canary wins, the other start checks it
                await store.execute(
                    "INSERT INTO meta (name, value) VALUES ('canary', ?) "
                    "ON CONFLICT (name) DO NOTHING",
                    (master.new_canary(),),
                )
                canary = await read_meta(store, "canary")
                assert canary is not None
            start_over = (
                None
                if path is not None
                else "delete the rows of the users, tokens, runpod_keys and meta tables"
            )
            master.check_canary(canary, named, start_over=start_over)
        except BaseException:
            if owns:
                await store.close()
            raise
        return cls(store, master, clock or _utc_now, path=path, owns_store=owns)

    async def close(self) -> None:
        """Close the store it opened (closing twice is harmless; a store it was given stays
        open)."""
        if self._owns_store:
            await self.store.close()

    async def __aenter__(self) -> Accounts:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # --- users ------------------------------------------------------------------------------

    async def add_user(self, name: str, role: Role = Role.USER) -> User:
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
        async with self.store.transaction() as tx:
            await tx.lock("swarmpod users")  # replicas adding the same name: one wins
            taken = await tx.fetchone(
                "SELECT name FROM users WHERE lower(name) = lower(?)", (name,)
            )
            if taken is not None:
                same = "" if taken[0] == name else f" (as '{taken[0]}')"
                raise AccountError(
                    f"The user '{name}' exists already{same}; pick another name, or change "
                    f"their role with: swarmpod users role {taken[0]} ROLE",
                    user=name,
                )
            await tx.execute(
                "INSERT INTO users (name, role) VALUES (?, ?)", (name, user.role.value)
            )
        return user

    async def get_user(self, name: str) -> User | None:
        """The user ``name`` (exact spelling), if there is one."""
        row = await self.store.fetchone("SELECT name, role FROM users WHERE name = ?", (name,))
        return User(row[0], Role(row[1])) if row else None

    async def list_users(self) -> list[User]:
        """Every user, by name."""
        rows = await self.store.fetchall("SELECT name, role FROM users ORDER BY name")
        return [User(name, Role(role)) for name, role in rows]

    async def set_role(self, name: str, role: Role) -> User:
        """Give ``name`` another role.

        Raises:
            AccountError: there is no such user.
        """
        user = User(name, Role(role))
        changed = await self.store.execute(
            "UPDATE users SET role = ? WHERE name = ?", (user.role.value, name)
        )
        if changed == 0:
            raise self._unknown(name)
        return user

    async def remove_user(self, name: str) -> None:
        """Remove a user with their tokens and RunPod key.

        Raises:
            AccountError: there is no such user.
        """
        async with self.store.transaction() as tx:
            await tx.execute('DELETE FROM tokens WHERE "user" = ?', (name,))
            await tx.execute('DELETE FROM runpod_keys WHERE "user" = ?', (name,))
            if await tx.execute("DELETE FROM users WHERE name = ?", (name,)) == 0:
                raise self._unknown(name)

    # --- tokens -----------------------------------------------------------------------------

    async def issue_token(self, name: str, *, label: str = "") -> Secret:
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
        async with self.store.transaction() as tx:
            await self._require(name, tx)
            await tx.execute(
                'INSERT INTO tokens (id, "user", hash, label, created_at, last_used_at) '
                "VALUES (?, ?, ?, ?, ?, NULL)",
                (new_token_id(), name, hash_token(token.reveal()), label, self._now()),
            )
        return token

    async def list_tokens(self, name: str) -> list[TokenInfo]:
        """The tokens of ``name``, oldest first (never the tokens themselves).

        Raises:
            AccountError: there is no such user.
        """
        await self._require(name, self.store)
        rows = await self.store.fetchall(
            'SELECT id, label, created_at, last_used_at FROM tokens WHERE "user" = ? '
            f"ORDER BY {self.store.dialect.insertion_order}",
            (name,),
        )
        return [TokenInfo(*row) for row in rows]

    async def revoke_token(self, name: str, token_id: str) -> bool:
        """Revoke one of ``name``'s tokens; whether it existed.

        Raises:
            AccountError: there is no such user.
        """
        async with self.store.transaction() as tx:
            await self._require(name, tx)
            deleted = await tx.execute(
                'DELETE FROM tokens WHERE "user" = ? AND id = ?', (name, token_id)
            )
        return deleted > 0

    async def authenticate(self, token: str | Secret) -> User | None:
        """The user a token belongs to, or None when it is not a valid token.

        Records when the token was last used (at most one write a minute per token).
        """
        text = token.reveal() if isinstance(token, Secret) else token
        if not text:
            return None
        digest = hash_token(text)
        row = await self.store.fetchone(
            "SELECT tokens.id, tokens.hash, tokens.last_used_at, users.name, users.role "
            'FROM tokens JOIN users ON users.name = tokens."user" WHERE tokens.hash = ?',
            (digest,),
        )
        # The lookup is by hash, so its timing tells nothing about the token; the constant-
        # time compare keeps the final check free of timing leaks all the same.
        if row is None or not hmac.compare_digest(row[1], digest):
            return None
        now = self._now()
        if row[2] != now:
            await self.store.execute(
                "UPDATE tokens SET last_used_at = ? WHERE id = ?", (now, row[0])
            )
        return User(row[3], Role(row[4]))

    # --- RunPod keys ------------------------------------------------------------------------

    async def set_runpod_key(self, name: str, key: Secret | None) -> None:
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
        async with self.store.transaction() as tx:
            await self._require(name, tx)
            if key is None:
                await tx.execute('DELETE FROM runpod_keys WHERE "user" = ?', (name,))
                return
            sealed = self._master.encrypt(f"{name}\n{key.reveal()}".encode())
            await tx.execute(
                'INSERT INTO runpod_keys ("user", encrypted, key_last_updated) VALUES (?, ?, ?) '
                'ON CONFLICT ("user") DO UPDATE SET encrypted = excluded.encrypted, '
                "key_last_updated = excluded.key_last_updated",
                (name, sealed, self._now()),
            )

    async def runpod_key_status(self, name: str) -> str:
        """``last updated yyyy-MM-dd HH:mm`` or ``not set`` (SwarmUI's ``GetAPIKeyStatus``).

        Raises:
            AccountError: there is no such user.
        """
        await self._require(name, self.store)
        row = await self.store.fetchone(
            'SELECT key_last_updated FROM runpod_keys WHERE "user" = ?', (name,)
        )
        return f"last updated {row[0]}" if row else "not set"

    async def runpod_key(self, user: str) -> Secret | None:
        """``user``'s own RunPod key, decrypted (:class:`~orchestrator.keys.KeyProvider`).

        Returns None when the user has set none (or does not exist).

        Raises:
            AccountError: the stored key does not decrypt, or was sealed for another user
                (the database was altered).
        """
        row = await self.store.fetchone(
            'SELECT encrypted FROM runpod_keys WHERE "user" = ?', (user,)
        )
        return None if row is None else self._unsealed(user, bytes(row[0]))

    def _unsealed(self, user: str, sealed: bytes) -> Secret:
        plain = self._master.decrypt(sealed)
        owner, _, key = (plain or b"").decode().partition("\n")
        if owner != user:  # it does not decrypt, or was sealed for another user
            raise AccountError(
                f"The stored RunPod key of '{user}' cannot be used: the database was altered "
                f"after the key was stored. Set the key again: swarmpod users set-key {user}",
                user=user,
            )
        return Secret(key)

    async def stored_runpod_keys(self) -> list[Secret]:
        """Every user's own RunPod key, decrypted (to cancel the leases a crashed service left
        open with them). A key that does not decrypt for its user is skipped and logged.
        """
        keys: list[Secret] = []
        rows = await self.store.fetchall(
            'SELECT "user", encrypted FROM runpod_keys ORDER BY "user"'
        )
        for user, sealed in rows:
            try:
                keys.append(self._unsealed(user, bytes(sealed)))
            except AccountError as exc:
                log.warning("[RunPodServerless] %s", exc)
        return keys

    # --- helpers ----------------------------------------------------------------------------

    def _now(self) -> str:
        return self._clock().astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M")

    async def _require(self, name: str, db: Statements) -> None:
        if await db.fetchone("SELECT 1 FROM users WHERE name = ?", (name,)) is None:
            raise self._unknown(name)

    @staticmethod
    def _unknown(name: str) -> AccountError:
        return AccountError(
            f"There is no user '{name}'; see the users with: swarmpod users list",
            user=name,
        )

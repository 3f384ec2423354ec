"""The service's configuration: where it listens, where it keeps state, and its RunPod backends.

One TOML file::

    [service]
    host = "127.0.0.1"
    port = 7801
    state_dir = "/var/lib/swarmpod"      # accounts, models, lease journal (default: the state dir)
    # database = "postgresql://swarmpod:...@db:5432/swarmpod"  # instead: replicas share it
    # replica_heartbeat_sec = 5          # with a database: a replica silent 2x this is dead

    [backends.main]                      # one table per RunPod backend, the seed's settings
    EndpointId = "abc123"
    RunPodApiKey = "rpa_..."             # optional: empty means each user's own key
    MaxConcurrent = 10
    AutoRefresh = true

    [backends.sdxl-large]
    EndpointId = "def456"

Every backend table is validated like :meth:`Settings.from_mapping`; a bad value is refused at
start, naming the backend, the setting and why. ``database`` (``SWARMPOD_DATABASE_URL`` wins
over it) and ``replica_heartbeat_sec`` (``SWARMPOD_REPLICA_HEARTBEAT_SEC``) are the service's:
every backend uses them (a backend table that sets DatabaseUrl itself is refused).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._state import default_state_file
from ..errors import SettingsError
from ..settings import Settings
from ..store import DatabaseUrl

__all__ = ["ServiceConfig"]

_DEFAULT_PORT = 7801


@dataclass(frozen=True)
class ServiceConfig:
    """What ``swarmpod serve`` runs.

    Attributes:
        host: the address to listen on.
        port: the port to listen on.
        state_dir: the directory of the accounts, model and lease-journal files (SQLite).
        backends: the RunPod backends by name, in file order (their ids are 0, 1, ...).
        database: the PostgreSQL database replicas share, or None (SQLite files in
            ``state_dir``).
        replica_heartbeat_s: with a database, how often this replica says it is alive.
    """

    host: str = "127.0.0.1"
    port: int = _DEFAULT_PORT
    state_dir: Path = field(default_factory=lambda: default_state_file().parent)
    backends: Mapping[str, Settings] = field(default_factory=dict)
    database: DatabaseUrl | None = None
    replica_heartbeat_s: float = 5.0

    @property
    def store_description(self) -> str:
        """Which store it uses, for the start line (never a password)."""
        if self.database is not None:
            return f"PostgreSQL {self.database.shown}"
        return f"SQLite files in {self.state_dir}"

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None,
        *,
        host: str | None = None,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ServiceConfig:
        """Read the TOML file (if any); ``host`` and ``port`` (the CLI flags) win over it, and
        ``SWARMPOD_DATABASE_URL`` / ``SWARMPOD_REPLICA_HEARTBEAT_SEC`` (``env``, default
        ``os.environ``) over its ``database`` / ``replica_heartbeat_sec``.

        Raises:
            SettingsError: the file is missing or invalid, or a backend's setting is bad.
        """
        data: dict[str, Any] = _read(Path(path)) if path is not None else {}
        service = data.get("service", {})
        if not isinstance(service, dict):
            raise SettingsError("service", "must be a table")
        known = ("host", "port", "state_dir", "database", "replica_heartbeat_sec")
        unknown = set(service) - set(known)
        if unknown:
            raise SettingsError(
                f"service.{sorted(unknown)[0]}", f"unknown; known: {', '.join(known)}"
            )
        shared = _shared_settings(service, os.environ if env is None else env, path)
        backends_table = data.get("backends", {})
        if not isinstance(backends_table, dict) or not all(
            isinstance(table, dict) for table in backends_table.values()
        ):
            raise SettingsError("backends", "must hold one table per backend: [backends.<name>]")
        state_dir = Path(service.get("state_dir") or default_state_file().parent)
        backends: dict[str, Settings] = {}
        for name, table in backends_table.items():
            for own in ("DatabaseUrl", "database_url", "ReplicaHeartbeatSec"):
                if own in table:
                    raise SettingsError(
                        f"backends.{name}.{own}",
                        "is the service's: set it once under [service] (database, "
                        "replica_heartbeat_sec)",
                        source=str(path),
                    )
            values = {"StateFile": str(state_dir / "swarmpod.sqlite3"), **table, **shared}
            try:
                settings = Settings.from_mapping(values, source=f"[backends.{name}]")
            except SettingsError as exc:
                raise SettingsError(
                    f"backends.{name}.{exc.setting}", exc.reason, source=str(path)
                ) from None
            if settings.endpoint_id is None:
                raise SettingsError(f"backends.{name}.EndpointId", "is required", source=str(path))
            backends[name] = settings
        chosen_port = port if port is not None else service.get("port", _DEFAULT_PORT)
        if not isinstance(chosen_port, int) or not 0 <= chosen_port <= 65535:
            raise SettingsError("service.port", f"must be a port number, got {chosen_port!r}")
        return cls(
            host=host or str(service.get("host", "127.0.0.1")),
            port=chosen_port,
            state_dir=state_dir,
            backends=backends,
            database=shared["DatabaseUrl"],
            replica_heartbeat_s=shared["ReplicaHeartbeatSec"],
        )


def _shared_settings(
    service: Mapping[str, Any], env: Mapping[str, str], path: str | os.PathLike[str] | None
) -> dict[str, Any]:
    """The database and heartbeat every backend uses: the environment, else [service]."""
    chosen: dict[str, Any] = {}
    for key, setting, variable in (
        ("database", "DatabaseUrl", "SWARMPOD_DATABASE_URL"),
        ("replica_heartbeat_sec", "ReplicaHeartbeatSec", "SWARMPOD_REPLICA_HEARTBEAT_SEC"),
    ):
        raw: Any = env.get(variable)
        source, named = f"env {variable}", setting
        if raw is None:
            raw, source, named = service.get(key), f"file {path}", f"service.{key}"
        try:
            parsed = Settings.from_mapping({setting: raw} if raw is not None else {})
        except SettingsError as exc:
            raise SettingsError(named, exc.reason, source=source) from None
        chosen[setting] = getattr(parsed, "database_url" if key == "database" else key)
    return chosen


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise SettingsError("config", f"file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError("config", f"file {path} is not valid TOML: {exc}") from None

"""The state-store seam: one interface, SQLite and PostgreSQL behind it, versioned migrations,
a database newer than the code refused, a DatabaseUrl that never shows its password."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import pytest
from pg_support import StoreSpot

from orchestrator import Settings
from orchestrator.errors import DatabaseError, SchemaTooNewError, SettingsError
from orchestrator.service import ServiceConfig
from orchestrator.store import (
    ACCOUNTS,
    BUDGETS,
    CATALOGS,
    JOURNAL,
    Component,
    DatabaseUrl,
    Migration,
    PostgresStore,
    migrate,
)
from orchestrator.workers import LeaseJournal

pytestmark = pytest.mark.anyio

EVERY_COMPONENT = (JOURNAL, BUDGETS, ACCOUNTS, CATALOGS)


# --- one interface, two databases ---------------------------------------------------------------


async def test_statements_and_transactions_behave_alike_on_both(spot: StoreSpot) -> None:
    async with spot.open() as store:
        await store.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)")
        first = await store.insert("INSERT INTO notes (id, text) VALUES (?, ?)", (7, "a"))
        assert first == 7
        assert await store.fetchone("SELECT text FROM notes WHERE id = ?", (7,)) == ("a",)
        assert await store.fetchone("SELECT text FROM notes WHERE id = ?", (8,)) is None

        async def rolled_back() -> None:
            async with store.transaction() as tx:
                await tx.execute("INSERT INTO notes (id, text) VALUES (?, ?)", (8, "b"))
                raise RuntimeError("rolled back")

        with pytest.raises(RuntimeError, match="rolled back"):
            await rolled_back()
        async with store.transaction() as tx:
            await tx.lock("notes")
            assert await tx.execute("UPDATE notes SET text = ? WHERE id = ?", ("c", 7)) == 1
        assert await store.fetchall("SELECT id, text FROM notes ORDER BY id") == [(7, "c")]
        now = await store.fetchone(f"SELECT {store.dialect.now}")
        assert now is not None and len(now[0]) == len("2026-11-28T07:30:00.000Z")


async def test_a_failed_statement_is_a_database_error_naming_the_store(spot: StoreSpot) -> None:
    async with spot.open() as store:
        with pytest.raises(DatabaseError) as failed:
            await store.execute("SELECT * FROM no_such_table")
        assert failed.value.database == store.description
        assert "no_such_table" in failed.value.reason


# --- migrations ---------------------------------------------------------------------------------


async def test_migrations_are_applied_once_and_their_versions_kept(spot: StoreSpot) -> None:
    async with spot.open() as store:
        for component in EVERY_COMPONENT:
            assert await migrate(store, component) == 0  # found nothing: created
            assert await migrate(store, component) == component.latest  # found it: nothing to do
        rows = await store.fetchall("SELECT component, version FROM swarmpod_schema")
        expected = {(component.name, component.latest) for component in EVERY_COMPONENT}
        assert expected <= set(rows)


async def test_a_newer_migration_is_applied_at_the_next_open(spot: StoreSpot) -> None:
    create = ("CREATE TABLE notes (a TEXT)",)
    add = ("ALTER TABLE notes ADD COLUMN b TEXT",)
    first = Component("notes", (Migration(1, sqlite=create, postgresql=create),))
    then = Component("notes", (*first.migrations, Migration(2, sqlite=add, postgresql=add)))
    async with spot.open() as store:
        await migrate(store, first)
    async with spot.open() as store:
        assert await migrate(store, then) == 1
        await store.execute("INSERT INTO notes (a, b) VALUES (?, ?)", ("x", "y"))


async def test_a_database_newer_than_the_code_is_refused_and_left_untouched(
    spot: StoreSpot,
) -> None:
    async with spot.open() as store:
        await LeaseJournal.open(store)
        await store.execute(
            "UPDATE swarmpod_schema SET version = ? WHERE component = ?",
            (JOURNAL.latest + 1, "journal"),
        )
    async with spot.open() as store:
        with pytest.raises(SchemaTooNewError) as refused:
            await LeaseJournal.open(store)
        error = refused.value
        assert (error.component, error.found, error.supported) == (
            "journal",
            JOURNAL.latest + 1,
            JOURNAL.latest,
        )
        assert not error.retryable and isinstance(error, DatabaseError)
        assert "newer than this swarmpod knows" in str(error) and "untouched" in str(error)
        row = await store.fetchone(
            "SELECT version FROM swarmpod_schema WHERE component = ?", ("journal",)
        )
        assert row == (JOURNAL.latest + 1,)


async def test_replicas_starting_together_migrate_once(spot: StoreSpot) -> None:
    found: list[int] = []

    async def start() -> None:
        async with spot.open() as store:
            found.append(await migrate(store, ACCOUNTS))

    async with anyio.create_task_group() as tasks:
        for _ in range(3):
            tasks.start_soon(start)
    assert sorted(found) == [0, ACCOUNTS.latest, ACCOUNTS.latest]


async def test_a_journal_written_before_versions_is_adopted_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "swarmpod.sqlite3"
    with sqlite3.connect(path) as old:  # the first journal's schema: no owner, no versions
        old.execute(
            "CREATE TABLE leases (id INTEGER PRIMARY KEY AUTOINCREMENT, endpoint_id TEXT NOT NULL,"
            " protocol TEXT NOT NULL, key_fingerprint TEXT NOT NULL, job_id TEXT,"
            " opened_at TEXT NOT NULL DEFAULT 'then', closed_at TEXT, outcome TEXT)"
        )
        old.execute(
            "INSERT INTO leases (endpoint_id, protocol, key_fingerprint, job_id) "
            "VALUES ('ep', 'v2', 'abcd1234', 'job-old')"
        )
    old.close()
    journal = await LeaseJournal.open(path)
    (entry,) = await journal.open_entries()
    assert (entry.job_id, entry.owner) == ("job-old", None)  # an orphan to recover
    await journal.close_file()


# --- the database's address ---------------------------------------------------------------------


def test_a_database_url_never_shows_its_password() -> None:
    url = DatabaseUrl(
        "postgresql://swarm:pa%40ss@db.local:5432/swarmpod?password=x2&sslmode=require"
    )
    for shown in (str(url), repr(url), url.shown, f"{url}"):
        assert "pa%40ss" not in shown and "pa@ss" not in shown and "x2" not in shown
    assert url.shown == "postgresql://swarm@db.local:5432/swarmpod?sslmode=require"
    assert url.reveal().startswith("postgresql://swarm:pa%40ss@")


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("mysql://u:secret-pw@h/db", "must be a postgresql:// URL"),
        ("postgresql://u:secret-pw@h:port/db", "is not a valid URL"),
        ("postgresql://", "names no server and no database"),
        ("db.local:5432", "must be a postgresql:// URL"),
    ],
)
def test_a_bad_database_url_is_refused_at_load_naming_the_setting_never_the_password(
    value: str, why: str
) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.load(env={"SWARMPOD_DATABASE_URL": value})
    assert refused.value.setting == "DatabaseUrl" and why in str(refused.value)
    assert "env SWARMPOD_DATABASE_URL" in str(refused.value)
    assert "secret-pw" not in str(refused.value)
    with pytest.raises(SettingsError) as from_service:
        ServiceConfig.load(None, env={"SWARMPOD_DATABASE_URL": value})
    assert why in str(from_service.value) and "secret-pw" not in str(from_service.value)


def test_the_service_database_comes_from_its_table_or_the_environment(tmp_path: Path) -> None:
    toml = tmp_path / "serve.toml"
    toml.write_text(
        '[service]\ndatabase = "postgresql://a:pw1@db/one"\n\n[backends.main]\nEndpointId = "ep"\n'
    )
    config = ServiceConfig.load(toml, env={})
    assert config.database == DatabaseUrl("postgresql://a:pw1@db/one")
    assert config.backends["main"].database_url == config.database  # every backend uses it
    assert config.store_description == "PostgreSQL postgresql://a@db/one"
    wins = ServiceConfig.load(toml, env={"SWARMPOD_DATABASE_URL": "postgresql://b:pw2@db/two"})
    assert wins.database == DatabaseUrl("postgresql://b:pw2@db/two")
    toml.write_text(
        '[service]\n\n[backends.main]\nEndpointId = "ep"\nDatabaseUrl = "postgresql://x"\n'
    )
    with pytest.raises(SettingsError, match="set it once under \\[service\\]"):
        ServiceConfig.load(toml, env={})


async def test_an_unreachable_database_is_refused_at_start_without_its_password() -> None:
    url = DatabaseUrl("postgresql://swarm:hunter2-pw@127.0.0.1:9/swarmpod?connect_timeout=2")
    with pytest.raises(DatabaseError) as refused:
        async with PostgresStore.connect(url):
            pass
    message = str(refused.value)
    assert "cannot use the database postgresql://swarm@127.0.0.1:9/swarmpod" in message
    assert "hunter2-pw" not in message and "hunter2-pw" not in repr(refused.value)
    assert "SWARMPOD_DATABASE_URL or [service] database" in message

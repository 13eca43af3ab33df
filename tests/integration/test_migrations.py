"""Migrations: a store written by an earlier release, once migrated, has exactly the schema of a fresh
one (on SQLite and PostgreSQL); a store written by a newer release is refused before anything runs."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from alertbot.errors import StoreTooNew, StoreUnavailable
from alertbot.store.engine import Store, sync_url
from alertbot.store.migrations import MIGRATIONS
from alertbot.store.schema import schema_migrations
from tests.postgres import PostgresServer
from tests.schema_compare import differences, load_schema_module, schema_of

DATA = Path(__file__).resolve().parent.parent / "data"
NOW = datetime(2026, 12, 1, tzinfo=UTC)
NEWEST = MIGRATIONS[-1][0]

NewDatabase = Callable[[], str]


@pytest.fixture(params=["sqlite", "postgres"])
def new_database(request: pytest.FixtureRequest, tmp_path: Path) -> NewDatabase:
    """Makes empty databases of one kind; returns their URLs."""
    if request.param == "sqlite":
        names = iter(range(1, 100))
        return lambda: f"sqlite:///{tmp_path}/store-{next(names)}.db"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database


def run_old_release(url: str, schema_file: str) -> None:
    """Migrate an empty database as an earlier release did (its schema module, run as it shipped)."""
    old = load_schema_module(DATA / schema_file)
    engine = sa.create_engine(sync_url(url))
    try:
        with engine.begin() as conn:
            old.migrate(conn, NOW)
    finally:
        engine.dispose()


def versions(conn: sa.Connection) -> list[int]:
    return [row[0] for row in conn.execute(sa.select(schema_migrations.c.version).order_by("version"))]


async def assert_migrates_to_fresh(new_database: NewDatabase, prepare: Callable[[str], None]) -> None:
    fresh_url, old_url = new_database(), new_database()
    prepare(old_url)
    fresh = await Store.open(fresh_url)
    migrated = await Store.open(old_url)
    try:
        expected, actual = await fresh.read(schema_of), await migrated.read(schema_of)
        assert await migrated.read(versions) == [version for version, _, _ in MIGRATIONS]
    finally:
        await fresh.close()
        await migrated.close()
    assert expected, "the fresh store has no tables"
    assert differences(expected, actual) == []


async def test_a_version_1_store_migrates_to_the_fresh_schema(new_database: NewDatabase) -> None:
    """The first release's schema, upgraded by every migration since, equals today's fresh schema:
    tables, columns (type, nullability, default, primary key), indexes, unique and foreign keys."""
    await assert_migrates_to_fresh(new_database, lambda url: run_old_release(url, "schema-v1.py"))


async def test_a_version_10_store_migrates_to_the_fresh_schema(new_database: NewDatabase) -> None:
    """The version 10 release's schema (the first to run on PostgreSQL), upgraded, equals a fresh one."""
    await assert_migrates_to_fresh(new_database, lambda url: run_old_release(url, "schema-v10.py"))


@pytest.mark.parametrize("new_database", ["sqlite"], indirect=True)  # the captured store is a SQLite file
async def test_the_captured_version_10_store_migrates_to_the_fresh_schema(new_database: NewDatabase) -> None:
    """The store a version 10 alertbot wrote (tests/data/store-v10.sql), upgraded, equals a fresh one."""

    def load(url: str) -> None:
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            db.executescript((DATA / "store-v10.sql").read_text())

    await assert_migrates_to_fresh(new_database, load)


def make_newer_store(url: str) -> None:
    """A store a newer alertbot migrated: version 1 applied, then a version this one does not know
    (everything from 2 on would still be pending here)."""
    run_old_release(url, "schema-v1.py")
    engine = sa.create_engine(sync_url(url))
    try:
        with engine.begin() as conn:
            conn.execute(
                schema_migrations.insert().values(version=NEWEST + 1, description="a newer release", applied_at=NOW)
            )
    finally:
        engine.dispose()


async def test_a_store_from_a_newer_release_is_refused_before_any_migration(new_database: NewDatabase) -> None:
    """A store whose schema is newer than this alertbot is refused with its own error, and none of
    this release's migrations run on it (the store is left as the newer release wrote it)."""
    url = new_database()
    make_newer_store(url)
    engine = sa.create_engine(sync_url(url))
    try:
        with pytest.raises(StoreTooNew) as raised:
            await Store.open(url)
        assert f"version {NEWEST + 1}" in raised.value.message and f"({NEWEST})" in raised.value.message
        with engine.connect() as conn:
            assert versions(conn) == [1, NEWEST + 1]
            assert not sa.inspect(conn).has_table("slack_messages")  # version 2 did not run
    finally:
        engine.dispose()


@pytest.mark.parametrize("new_database", ["sqlite"], indirect=True)
def test_cli_refuses_a_newer_store_with_exit_2_and_says_why(new_database: NewDatabase, tmp_path: Path) -> None:
    """`alertbot serve` and the store commands exit 2 with one clear line, not a traceback and not
    'store is closed'."""
    url = new_database()
    make_newer_store(url)
    config = tmp_path / "c.yaml"
    config.write_text(f"storage: {{url: '{url}'}}\nserver: {{port: 0}}\n")
    for args in (["serve"], ["silence", "list"]):
        result = subprocess.run(
            [sys.executable, "-m", "alertbot", *args, "--config", str(config)],
            capture_output=True,
            text=True,
            env={**os.environ},
            timeout=60,
            check=False,
        )
        assert result.returncode == 2, (args, result.stderr)
        assert f"error: the store's schema is version {NEWEST + 1}" in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr and "store is closed" not in result.stderr


async def test_an_error_inside_a_transaction_is_not_reported_as_a_closed_store(tmp_path: Path) -> None:
    """Only a store that was closed says "store is closed"; what a transaction raised comes out as it is."""

    def broken(conn: sa.Connection) -> None:
        raise RuntimeError("raised inside the transaction")

    store = await Store.open(f"sqlite:///{tmp_path}/a.db")
    try:
        with pytest.raises(RuntimeError, match="raised inside the transaction"):
            await store.write(broken)
    finally:
        await store.close()
    with pytest.raises(StoreUnavailable, match="store is closed"):
        await store.read(versions)

"""The core Alembic runner plugins declare their schema history with, on SQLite and Postgres."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from authcore import Plugin
from authcore.migrations import Migrations

HISTORY = Migrations(str(Path(__file__).parent / "migration_history"), "fixture_alembic_version", 0x66697874)
OTHER = Migrations(str(Path(__file__).parent / "migration_history"), "other_alembic_version", 0x6F746872)
"""The same scripts under another version table: what a second plugin's history looks like to the runner."""


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'migrations.db'}"
    else:
        url = request.getfixturevalue("authcore_postgres_url")
    created = create_async_engine(url)
    try:
        yield created
    finally:
        await created.dispose()


async def _rows(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as connection:
        return list((await connection.execute(text("SELECT name FROM fixture_items"))).scalars())


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))


def test_head_is_read_from_the_scripts() -> None:
    assert HISTORY.head() == "0002_seed"


async def test_upgrade_from_empty_runs_every_revision_once(engine: AsyncEngine) -> None:
    assert await HISTORY.current(engine) is None
    assert "fixture_alembic_version" not in await _tables(engine)

    await HISTORY.upgrade(engine)

    assert await HISTORY.current(engine) == "0002_seed"
    assert await _rows(engine) == ["seeded"]


async def test_upgrade_at_head_changes_nothing(engine: AsyncEngine) -> None:
    await HISTORY.upgrade(engine)
    await HISTORY.upgrade(engine)

    assert await HISTORY.current(engine) == "0002_seed"
    assert await _rows(engine) == ["seeded"]


async def test_each_history_keeps_its_own_revision(engine: AsyncEngine) -> None:
    await HISTORY.upgrade(engine)

    # Alembic's default table and the other history are untouched: neither was ever run.
    assert await OTHER.current(engine) is None
    assert "alembic_version" not in await _tables(engine)


async def test_a_failed_revision_leaves_the_database_at_the_previous_one(engine: AsyncEngine) -> None:
    # A table in the way: revision 0001 fails, and nothing of the upgrade is kept.
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE fixture_items (id INTEGER PRIMARY KEY)"))

    with pytest.raises(Exception, match="fixture_items"):
        await HISTORY.upgrade(engine)

    assert await HISTORY.current(engine) is None


@pytest.mark.services
async def test_concurrent_upgrades_on_postgres_run_each_revision_once(authcore_postgres_url: str) -> None:
    engines = [create_async_engine(authcore_postgres_url) for _ in range(4)]
    try:
        await asyncio.gather(*(HISTORY.upgrade(each) for each in engines))

        assert await HISTORY.current(engines[0]) == "0002_seed"
        assert await _rows(engines[0]) == ["seeded"]
    finally:
        for each in engines:
            await each.dispose()


def test_plugins_declare_no_migrations_by_default() -> None:
    assert Plugin.migrations is None


async def test_schema_differences_reports_drift_and_ignores_the_version_table(tmp_path: Path) -> None:
    from sqlalchemy import Column, Integer, MetaData, String, Table
    from sqlalchemy.ext.asyncio import create_async_engine

    from authcore.testing import schema_differences

    built, expected = MetaData(), MetaData()
    Table("things", built, Column("id", Integer, primary_key=True))
    Table("plugin_version", built, Column("version_num", String(32), primary_key=True))
    Table("things", expected, Column("id", Integer, primary_key=True), Column("name", String(50)))
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'drift.db'}")
    try:
        async with engine.begin() as connection:
            await connection.run_sync(built.create_all)
            found = await connection.run_sync(lambda sync: schema_differences(sync, expected, "plugin_version"))
    finally:
        await engine.dispose()
    # The missing column is reported; the version table the code does not describe is not.
    assert [diff[0] for diff in found if isinstance(diff, tuple)] == ["add_column"]

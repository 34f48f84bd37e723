"""The plugin's Alembic migrations on SQLite and Postgres: from empty, re-run, adoption, concurrency."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from alembic import command
from authcore_virtual_keys import migrations
from authcore_virtual_keys.store import KeyStore
from authcore_virtual_keys.tables import keys, metadata, teams, users
from sqlalchemy import Connection, MetaData, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from authcore.testing import schema_differences

from .conftest import GatewayFactory


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    created = create_async_engine(database_url)
    try:
        yield created
    finally:
        await created.dispose()


def _schema_differences(connection: Connection) -> list[object]:
    return schema_differences(connection, metadata, migrations.VERSION_TABLE)


async def test_upgrade_from_empty_creates_exactly_the_current_schema(engine: AsyncEngine) -> None:
    assert await migrations.current(engine) is None

    await migrations.upgrade(engine)

    assert await migrations.current(engine) == migrations.head()
    async with engine.connect() as connection:
        assert await connection.run_sync(_schema_differences) == []


async def test_upgrade_twice_is_a_no_op_that_keeps_data(engine: AsyncEngine) -> None:
    await migrations.upgrade(engine)
    async with engine.begin() as connection:
        await connection.execute(
            teams.insert().values(team_id="t1", models=[], blocked=False, metadata={}, created_at=datetime.now(UTC))
        )

    await migrations.upgrade(engine)

    assert await migrations.current(engine) == migrations.head()
    async with engine.connect() as connection:
        assert (await connection.execute(select(teams.c.team_id))).scalars().all() == ["t1"]


async def test_tables_from_the_first_release_are_adopted(engine: AsyncEngine) -> None:
    # The first release created its three tables with create_all and kept no revision.
    first_release = MetaData()
    for table in (keys, teams, users):
        table.to_metadata(first_release)
    async with engine.begin() as connection:
        await connection.run_sync(first_release.create_all)
        for index in ("ix_vk_keys_key_id", "ix_vk_teams_organization_id"):
            await connection.execute(text(f"DROP INDEX {index}"))
        for table, added_later in (
            ("vk_keys", "temp_budget_increase"),
            ("vk_keys", "temp_budget_expiry"),
            ("vk_keys", "key_id"),
            ("vk_keys", "budget_id"),
            ("vk_teams", "organization_id"),
        ):
            await connection.execute(text(f"ALTER TABLE {table} DROP COLUMN {added_later}"))
        await connection.execute(
            users.insert().values(user_id="u1", deactivated=False, metadata={}, created_at=datetime.now(UTC))
        )

    await migrations.upgrade(engine)

    assert await migrations.current(engine) == migrations.head()
    async with engine.connect() as connection:
        assert (await connection.execute(select(users.c.user_id))).scalars().all() == ["u1"]
        assert await connection.run_sync(_schema_differences) == []


async def test_revision_is_kept_apart_from_other_alembic_histories(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
        await connection.execute(text("INSERT INTO alembic_version VALUES ('someone_elses_head')"))

    await migrations.upgrade(engine)

    async with engine.connect() as connection:
        other = (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
        names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    assert other == ["someone_elses_head"]
    assert migrations.VERSION_TABLE in names


@pytest.mark.services
async def test_concurrent_upgrades_on_postgres_do_not_fail(authcore_postgres_url: str) -> None:
    engines = [create_async_engine(authcore_postgres_url) for _ in range(3)]
    try:
        await asyncio.gather(*(migrations.upgrade(each) for each in engines))

        assert await migrations.current(engines[0]) == migrations.head()
        async with engines[0].connect() as connection:
            assert await connection.run_sync(_schema_differences) == []
    finally:
        for each in engines:
            await each.dispose()


async def test_migration_scripts_ship_inside_the_package() -> None:
    # Alembic finds its scripts next to the installed module, not in a checkout's alembic.ini.
    assert migrations.SCRIPT_LOCATION.endswith("authcore_virtual_keys/migrations")
    assert migrations.head() == "0006_team_members"


async def test_start_up_without_create_schema_leaves_the_database_alone(make_gateway: GatewayFactory) -> None:
    async with make_gateway(create_schema=False) as gateway:
        assert await migrations.current(gateway.resources.engine()) is None


async def test_start_up_migrates_to_the_newest_revision(make_gateway: GatewayFactory) -> None:
    async with make_gateway() as gateway:
        assert await migrations.current(gateway.resources.engine()) == migrations.head()


async def test_0004_gives_existing_keys_the_key_id_they_had(engine: AsyncEngine) -> None:
    # A database of the previous release: at 0003, with keys whose id was their hash's first 12 characters.
    tokens = ["a" * 12 + "0" * 52, "0123456789ab" + "f" * 52]
    async with engine.begin() as connection:
        await connection.run_sync(lambda sync: command.upgrade(migrations.MIGRATIONS.config(sync), "0003_temp_budget"))
        for token in tokens:
            await connection.execute(
                keys.insert().values(
                    token_hash=token, models=["gpt-4o"], blocked=False, metadata={}, created_at=datetime.now(UTC)
                )
            )
        await connection.execute(
            teams.insert().values(team_id="t1", models=[], blocked=False, metadata={}, created_at=datetime.now(UTC))
        )
    assert await migrations.current(engine) == "0003_temp_budget"

    await migrations.upgrade(engine)

    assert await migrations.current(engine) == migrations.head()
    async with engine.connect() as connection:
        assert await connection.run_sync(_schema_differences) == []
        found = (await connection.execute(select(keys.c.token_hash, keys.c.key_id).order_by(keys.c.token_hash))).all()
        assert [tuple(row) for row in found] == sorted((token, token[:12]) for token in tokens)
        assert (await connection.execute(select(teams.c.organization_id))).scalars().all() == [None]
    snapshot = await KeyStore(engine).lookup(tokens[0])
    assert snapshot is not None
    assert snapshot.identity("keys").key_id == tokens[0][:12]
    assert snapshot.models == ("gpt-4o",)

"""The plugin's Alembic history on SQLite and Postgres: from empty, re-run, adopting create_all tables, start-up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from authcore_budgets import BudgetsPlugin, migrations
from authcore_budgets.tables import ledger, limits, metadata
from budget_helpers import budgets_config
from sqlalchemy import Connection, MetaData, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from authcore.resources import Resources
from authcore.testing import schema_differences, started_runner


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'budgets.db'}"
    return str(request.getfixturevalue("authcore_postgres_url"))


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    created = create_async_engine(database_url)
    try:
        yield created
    finally:
        await created.dispose()


def _schema_differences(connection: Connection) -> list[object]:
    return schema_differences(connection, metadata, migrations.VERSION_TABLE)


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


ADDED_LATER = "tokens"
"""The ledger column the first release's `create_all` did not make (revision 0002 adds it)."""


def _charge(request_id: str) -> dict[str, object]:
    return {"request_id": request_id, "amount_micros": 5, "reserved_at_ms": 1, "created_at": datetime.now(UTC)}


def test_revisions_ship_inside_the_package() -> None:
    assert migrations.SCRIPT_LOCATION.endswith("authcore_budgets/migrations")
    assert migrations.head() == "0002_ledger_tokens"
    assert BudgetsPlugin.migrations is migrations.MIGRATIONS


async def test_upgrade_from_empty_creates_exactly_the_current_tables(engine: AsyncEngine) -> None:
    assert await migrations.current(engine) is None

    await migrations.upgrade(engine)

    assert await migrations.current(engine) == migrations.head()
    async with engine.connect() as connection:
        assert await connection.run_sync(_schema_differences) == []
        assert await connection.run_sync(_tables) == {"budget_ledger", "budget_limits", migrations.VERSION_TABLE}


async def test_upgrade_twice_is_a_no_op_that_keeps_data(engine: AsyncEngine) -> None:
    await migrations.upgrade(engine)
    async with engine.begin() as connection:
        await connection.execute(ledger.insert().values(**_charge("r1")))

    await migrations.upgrade(engine)

    async with engine.connect() as connection:
        assert (await connection.execute(select(ledger.c.request_id))).scalars().all() == ["r1"]


async def test_tables_created_by_create_all_are_adopted_with_their_rows(engine: AsyncEngine) -> None:
    # Before migrations, start-up ran metadata.create_all and kept no revision.
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
        await connection.execute(text(f"ALTER TABLE budget_ledger DROP COLUMN {ADDED_LATER}"))
        await connection.execute(ledger.insert().values(**_charge("r1")))
        await connection.execute(
            limits.insert().values(
                entity="team", entity_id="t1", model="", max_budget_micros=7, updated_at=datetime.now(UTC)
            )
        )

    await migrations.upgrade(engine)

    assert await migrations.current(engine) == migrations.head()
    async with engine.connect() as connection:
        assert (await connection.execute(select(ledger.c.request_id, ledger.c.tokens))).all() == [("r1", 0)]
        assert (await connection.execute(select(limits.c.max_budget_micros))).scalars().all() == [7]
        assert await connection.run_sync(_schema_differences) == []


async def test_a_missing_table_is_created_next_to_an_adopted_one(engine: AsyncEngine) -> None:
    only_ledger = MetaData()
    ledger.to_metadata(only_ledger)
    async with engine.begin() as connection:
        await connection.run_sync(only_ledger.create_all)
        await connection.execute(text(f"ALTER TABLE budget_ledger DROP COLUMN {ADDED_LATER}"))
        await connection.execute(ledger.insert().values(**_charge("r1")))

    await migrations.upgrade(engine)

    async with engine.connect() as connection:
        assert (await connection.execute(select(ledger.c.request_id))).scalars().all() == ["r1"]
        assert await connection.run_sync(_schema_differences) == []


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


@pytest.mark.parametrize("create_schema", [True, False])
async def test_start_up_migrates_only_with_create_schema(database_url: str, create_schema: bool) -> None:
    specs = {"budgets": (BudgetsPlugin, budgets_config(create_schema=create_schema))}
    async with started_runner(specs, timeout_s=5, resources=Resources(database_url)) as runner:
        assert runner.resources is not None
        revision = await migrations.current(runner.resources.engine())
    assert revision == (migrations.head() if create_schema else None)

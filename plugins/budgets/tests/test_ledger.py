"""The spend ledger writes each charge once, every column as given, on SQLite and on Postgres."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from authcore_budgets.entities import LedgerFilter
from authcore_budgets.ledger import Charge, Ledger
from authcore_budgets.tables import ledger as ledger_table
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
async def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Ledger]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"
    else:
        url = str(request.getfixturevalue("authcore_postgres_url"))
    engine = create_async_engine(url)
    written = Ledger(engine)
    await written.create_schema()
    try:
        yield written
    finally:
        await written.aclose()
        await engine.dispose()


async def rows(ledger: Ledger) -> list[dict[str, object]]:
    async with ledger._engine.connect() as connection:
        found = (await connection.execute(select(ledger_table).order_by(ledger_table.c.id))).mappings().all()
    return [dict(row) for row in found]


async def test_every_column_is_written_as_given(ledger: Ledger) -> None:
    before = datetime.now(UTC)
    columns = {"key_id": "k1", "team_id": "t1", "user_id": "u1", "org_id": "o1", "end_user_id": "e1"}
    ledger.submit(Charge("r1", 1234, "gpt-4o", columns, 1_700_000_000_123, tokens=321))
    ledger.submit(Charge("r2", 5, None, {"key_id": "k2", "ignored": "x"}, 1_700_000_000_456))
    assert ledger.backlog == 2
    await ledger.flush()
    assert ledger.backlog == 0
    first, second = await rows(ledger)
    stamps = [row.pop("created_at") for row in (first, second)]
    first.pop("id")
    second.pop("id")
    assert first == {"request_id": "r1", "amount_micros": 1234, "model": "gpt-4o", **columns,
                     "reserved_at_ms": 1_700_000_000_123, "tokens": 321}  # fmt: skip
    assert second == {
        "request_id": "r2", "amount_micros": 5, "model": None, "key_id": "k2", "team_id": None, "user_id": None,
        "org_id": None, "end_user_id": None, "reserved_at_ms": 1_700_000_000_456, "tokens": 0,
    }  # fmt: skip
    async with ledger._engine.connect() as connection:
        stored = (await connection.exec_driver_sql("SELECT created_at FROM budget_ledger")).scalars().all()
    if ledger._engine.dialect.name == "sqlite":
        # Stored as SQLAlchemy stores a timestamp on SQLite (text, no offset), not as sqlite3's adapter would.
        assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", value) for value in stored), stored
    for stamp in stamps:
        assert isinstance(stamp, datetime)
        aware = stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)
        assert before - timedelta(seconds=1) <= aware <= datetime.now(UTC) + timedelta(seconds=1)


async def test_a_repeated_request_id_is_written_once_and_the_rest_of_its_batch_is_kept(ledger: Ledger) -> None:
    ledger.submit(Charge("r1", 10, "m", {"key_id": "k"}, 1))
    await ledger.flush()
    for request_id in ("r2", "r1", "r3"):
        ledger.submit(Charge(request_id, 10, "m", {"key_id": "k"}, 1))
    await ledger.flush()
    assert [row["request_id"] for row in await rows(ledger)] == ["r1", "r2", "r3"]
    assert await ledger.total(LedgerFilter((("key_id", "k"),), None, 0, None)) == 30


async def test_close_writes_every_queued_charge_even_while_a_batch_is_being_written(ledger: Ledger) -> None:
    engine = ledger._engine
    busy = Ledger(engine, delay_s=0)
    for index in range(3000):
        busy.submit(Charge(f"q{index}", 1, "m", {"key_id": "q"}, 1))
    # Closed while the writer is in the middle of a batch (cancelling it there used to lose the queue).
    while not busy._lock.locked():
        await asyncio.sleep(0)
    await busy.aclose()
    assert busy.backlog == 0
    assert await ledger.total(LedgerFilter((("key_id", "q"),), None, 0, None)) == 3000

"""The cross-process proof on real Redis and Postgres: a $1.00 budget admits exactly twenty $0.05 requests."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from authcore_budgets.entities import LedgerFilter
from authcore_budgets.ledger import Ledger
from budget_helpers import chat, plugins
from race_worker import IDENTITY

from authcore import Usage
from authcore.resources import Resources
from authcore.testing import started_runner

pytestmark = pytest.mark.services

WORKER = str(Path(__file__).parent / "race_worker.py")
KEY_FILTER = LedgerFilter((("key_id", "race-key"),), None, 0, None)


async def ledger_for(database: str) -> Ledger:
    from sqlalchemy.ext.asyncio import create_async_engine

    return Ledger(create_async_engine(database))


def launch(
    database: str, redis_url: str, prefix: str, count: int, start_at: float, mode: str, ttl: float
) -> subprocess.Popen[str]:
    args = [sys.executable, WORKER, database, redis_url, prefix, str(count), str(start_at), mode, str(ttl)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # noqa: S603 - our own interpreter and script


def report(process: subprocess.Popen[str]) -> dict[str, int]:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, process.stderr.read() if process.stderr else "no output"
    data: dict[str, int] = json.loads(line)
    return data


async def test_two_processes_share_one_budget_exactly(
    authcore_postgres_url: str, authcore_redis_url: str, authcore_redis_prefix: str
) -> None:
    ledger = await ledger_for(authcore_postgres_url)
    await ledger.create_schema()
    start_at = time.time() + 4
    workers = [
        launch(authcore_postgres_url, authcore_redis_url, authcore_redis_prefix, 50, start_at, "settle", 600)
        for _ in range(2)
    ]
    reports = [await asyncio.to_thread(report, worker) for worker in workers]
    for worker in workers:
        assert await asyncio.to_thread(worker.wait, 30) == 0
    assert sum(r["admitted"] for r in reports) == 20
    assert sum(r["denied"] for r in reports) == 80
    assert all(r["other"] == 0 for r in reports)
    assert await ledger.total(KEY_FILTER) == 1_000_000
    await ledger._engine.dispose()


async def test_a_killed_process_cannot_cause_overspend_and_its_holds_expire(
    authcore_postgres_url: str, authcore_redis_url: str, authcore_redis_prefix: str
) -> None:
    ledger = await ledger_for(authcore_postgres_url)
    await ledger.create_schema()
    ttl = 2.0
    crashing = launch(authcore_postgres_url, authcore_redis_url, authcore_redis_prefix, 12, 0, "hold", ttl)
    try:
        held = await asyncio.to_thread(report, crashing)
    finally:
        crashing.send_signal(signal.SIGKILL)
        crashing.wait(10)
    assert held["admitted"] == 12
    specs = plugins({"tok": IDENTITY}, hold_ttl_s=ttl, create_schema=False)
    resources = Resources(authcore_postgres_url, authcore_redis_url, authcore_redis_prefix)
    async with started_runner(specs, timeout_s=10, resources=resources) as runner:

        async def spend() -> int:
            result = await runner.authenticate(chat("tok"))
            if result.error is None:
                result.usage = Usage("m5c", 1, 1000)
                await runner.settle(result, completed=True)
            return result.status_code

        # The dead process's holds still count: only the remaining $0.40 can be spent.
        first = await asyncio.gather(*(spend() for _ in range(20)))
        assert first.count(200) == 8
        await asyncio.sleep(ttl + 0.2)
        # Its holds expired on their own: the rest of the budget is usable, and no more.
        second = await asyncio.gather(*(spend() for _ in range(20)))
        assert second.count(200) == 12
    assert await ledger.total(KEY_FILTER) == 1_000_000
    await ledger._engine.dispose()

"""A settlement Redis did not take is sent again when Redis is back, so the counter never misses a charge."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from authcore_budgets.accounting import BudgetReservation
from authcore_budgets.redis_store import RedisStore
from authcore_budgets.settlement_retries import Settlement
from budget_helpers import admitted, budgets_of, own_redis, plugins, spend, unused_port

from authcore import Usage
from authcore.resources import Resources
from authcore.runner import AuthResult, Runner
from authcore.testing import started_runner

pytestmark = pytest.mark.services

NICKEL = 50_000
"""Micro-USD of one `chat` request: the $0.20 budget below admits four."""


async def drained(runner: Runner, timeout_s: float = 10.0) -> None:
    retries = budgets_of(runner).accountant.retries
    async with asyncio.timeout(timeout_s):
        while retries.pending:
            await asyncio.sleep(0.02)


def hold_of(result: AuthResult) -> BudgetReservation:
    (reservation,) = result.reservations
    assert isinstance(reservation, BudgetReservation)
    return reservation


async def test_a_settlement_made_while_redis_restarts_reaches_the_counter(tmp_path: Path) -> None:
    # A Redis that keeps its data over a restart (append-only file), so only the settlement can be missed.
    port = unused_port()
    durable = ("--appendonly", "yes", "--appendfsync", "always", "--dir", str(tmp_path))
    config = plugins({"tok": {"key_id": "k1", "limits": {"max_budget": 0.20}}}, hold_ttl_s=1)
    resources = Resources(f"sqlite+aiosqlite:///{tmp_path / 'budgets.db'}", f"redis://127.0.0.1:{port}/0", "t:")
    with own_redis(*durable, port=port) as (_, first):
        async with started_runner(config, timeout_s=5, resources=resources) as runner:
            result = await admitted(runner)
            first.terminate()
            first.wait(5)
            result.usage = Usage("m5c", 1, 1000)
            await runner.settle(result, completed=True)  # Redis is down: the settlement fails
            assert budgets_of(runner).accountant.retries.pending == 1
            # Long enough for the request's hold to expire: from now on only the charge itself counts.
            await asyncio.sleep(1.2)
            with own_redis(*durable, port=port):
                await drained(runner)
                counter = hold_of(result).counters[0]
                store = budgets_of(runner).accountant.store
                state = await store.read(counter)
                assert state is not None
                assert (state.spent, state.reserved) == (NICKEL, 0)
                # $0.05 of $0.20 spent: three more are admitted, not four.
                assert [await spend(runner) for _ in range(4)] == [200, 200, 200, 429]
                await budgets_of(runner).accountant.ledger.flush()
                assert await budgets_of(runner).accountant.ledger.total(counter.ledger) == 4 * NICKEL


async def test_a_retried_settlement_that_had_arrived_is_not_charged_twice(
    tmp_path: Path, authcore_redis_url: str, authcore_redis_prefix: str
) -> None:
    # The first attempt reached Redis but its reply did not come back (a timeout): the retry finds it settled.
    config = plugins({"tok": {"key_id": "k1", "limits": {"max_budget": 0.20}}})
    resources = Resources(f"sqlite+aiosqlite:///{tmp_path / 'budgets.db'}", authcore_redis_url, authcore_redis_prefix)
    async with started_runner(config, timeout_s=5, resources=resources) as runner:
        result = await admitted(runner)
        result.usage = Usage("m5c", 1, 1000)
        await runner.settle(result, completed=True)
        held = hold_of(result)
        accountant = budgets_of(runner).accountant
        accountant.retries.add(Settlement(held.request_id, held.counters, NICKEL, held.rates, 0))
        await drained(runner)
        state = await accountant.store.read(held.counters[0])
        assert state is not None
        assert state.spent == NICKEL
        assert [await spend(runner) for _ in range(4)] == [200, 200, 200, 429]


async def test_settlements_still_waiting_at_shutdown_are_counted_in_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = plugins({"tok": {"key_id": "k1", "limits": {"max_budget": 0.20}}})
    with own_redis() as (url, server):
        resources = Resources(f"sqlite+aiosqlite:///{tmp_path / 'budgets.db'}", url, "t:")
        with caplog.at_level(logging.WARNING, logger="authcore.budgets"):
            async with started_runner(config, timeout_s=5, resources=resources) as runner:
                assert isinstance(budgets_of(runner).accountant.store, RedisStore)
                results = [await admitted(runner) for _ in range(2)]
                server.terminate()
                server.wait(5)
                for result in results:
                    result.usage = Usage("m5c", 1, 1000)
                    await runner.settle(result, completed=True)
    lost = [record.getMessage() for record in caplog.records if "lost at shutdown" in record.getMessage()]
    assert lost == [lost[0]]
    assert lost[0].startswith("budgets: 2 settlements lost at shutdown")

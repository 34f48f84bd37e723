"""Redis-only behaviour: rebuild from the ledger after data loss, fail closed, fail open, eviction policy."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from authcore_budgets.accounting import BudgetReservation
from budget_helpers import ADMIN, budgets_of, chat, own_redis, plugins, spend, unused_port

from authcore import ConfigurationError, Usage
from authcore.resources import Resources
from authcore.runner import Runner
from authcore.testing import started_runner
from authcore.testing.services import delete_prefix

pytestmark = pytest.mark.services

BUDGETED = {"key_id": "k1", "limits": {"max_budget": 0.20}}


@contextlib.asynccontextmanager
async def runner_on(resources: Resources, **config: Any) -> AsyncIterator[Runner]:
    async with started_runner(
        plugins({"tok": BUDGETED, "free": {"key_id": "k2"}, "admin": ADMIN}, **config), timeout_s=5, resources=resources
    ) as runner:
        yield runner


@pytest.fixture
def database(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'budgets.db'}"


async def test_counters_are_rebuilt_from_the_ledger_after_data_loss(
    database: str, authcore_redis_url: str, authcore_redis_prefix: str
) -> None:
    async with runner_on(Resources(database, authcore_redis_url, authcore_redis_prefix)) as runner:
        assert [await spend(runner) for _ in range(3)] == [200, 200, 200]
        held = await runner.authenticate(chat("tok"))  # a hold in flight when Redis loses its data
        assert held.error is None
        # What FLUSHALL does to this instance, without touching anyone else's keys.
        assert delete_prefix(authcore_redis_url, authcore_redis_prefix) > 0
        held.usage = Usage("m5c", 1, 1000)
        await runner.settle(held, completed=True)  # recorded in the ledger, kept as a late charge
        # Spend is back from the ledger: $0.20 of $0.20 used, nothing more is admitted.
        assert await spend(runner) == 429
        (reservation,) = held.reservations
        assert isinstance(reservation, BudgetReservation)
        total = await budgets_of(runner).accountant.ledger.total(reservation.counters[0].ledger)
        assert total == 200_000


async def test_rebuild_also_happens_in_a_fresh_process_state(
    database: str, authcore_redis_url: str, authcore_redis_prefix: str
) -> None:
    async with runner_on(Resources(database, authcore_redis_url, authcore_redis_prefix)) as runner:
        assert [await spend(runner) for _ in range(2)] == [200, 200]
    delete_prefix(authcore_redis_url, authcore_redis_prefix)
    async with runner_on(Resources(database, authcore_redis_url, authcore_redis_prefix)) as runner:
        assert [await spend(runner) for _ in range(3)] == [200, 200, 429]


async def test_unreachable_redis_fails_closed(
    database: str, authcore_redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"redis://127.0.0.1:{unused_port()}/0"
    async with runner_on(Resources(database, url, authcore_redis_prefix)) as runner:
        result = await runner.authenticate(chat("tok"))
        assert result.status_code == 503
        assert result.error is not None
        assert result.error.reason_id == "budget_store_unavailable"
        # A request no budget applies to does not need the counters.
        assert await spend(runner, "free") == 200


async def test_fail_open_admits_and_logs_every_use(
    database: str, authcore_redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"redis://127.0.0.1:{unused_port()}/0"
    async with runner_on(Resources(database, url, authcore_redis_prefix), fail_open=True) as runner:
        with caplog.at_level(logging.WARNING, logger="authcore.budgets"):
            assert [await spend(runner), await spend(runner)] == [200, 200]
    assert sum("WITHOUT a budget hold" in record.getMessage() for record in caplog.records) == 2


async def test_startup_refuses_a_redis_that_can_evict(database: str) -> None:
    with (
        own_redis("--maxmemory-policy", "allkeys-lru") as (url, _),
        pytest.raises(ConfigurationError, match="noeviction"),
    ):
        async with runner_on(Resources(database, url, "authcore-test:evict:")):
            pass


async def test_redis_stopped_mid_service_fails_closed(database: str) -> None:
    with own_redis() as (url, process):
        async with runner_on(Resources(database, url, "authcore-test:stop:")) as runner:
            assert await spend(runner) == 200
            process.terminate()
            process.wait(5)
            result = await runner.authenticate(chat("tok"))
            assert result.status_code == 503


async def test_a_burst_beyond_the_connection_pool_waits_instead_of_being_refused(
    database: str, authcore_redis_url: str, authcore_redis_prefix: str
) -> None:
    # More concurrent requests than the shared client's pool (100 connections) holds. The store timeout
    # is generous because this asserts no refusal from the pool, not latency: on a loaded machine,
    # opening 250 connections at once can take longer than the default 0.5 s.
    async with started_runner(
        plugins({"tok": {"key_id": "big", "limits": {"max_budget": 100}}}, store_timeout_s=5),
        timeout_s=5,
        resources=Resources(database, authcore_redis_url, authcore_redis_prefix),
    ) as runner:

        async def one() -> int:
            result = await runner.authenticate(chat("tok"))
            result.usage = Usage("m5c", 1, 10)
            await runner.settle(result, completed=True)
            return result.status_code

        statuses = await asyncio.gather(*(one() for _ in range(250)))
    assert statuses.count(200) == 250


async def test_scripts_unknown_to_the_server_are_loaded_again(
    database: str, authcore_redis_url: str, authcore_redis_prefix: str
) -> None:
    from authcore_budgets import lua
    from authcore_budgets.redis_store import RedisStore

    async with runner_on(Resources(database, authcore_redis_url, authcore_redis_prefix)) as runner:
        store = budgets_of(runner).accountant.store
        assert isinstance(store, RedisStore)
        assert await spend(runner) == 200
        # What a Redis restart or SCRIPT FLUSH does to this process's script ids (without flushing
        # the scripts of anyone else sharing the server).
        unknown = "0" * 40
        store._shas[lua.RESERVE] = store._shas[lua.SETTLE] = unknown
        assert await spend(runner) == 200
        assert unknown not in (store._shas[lua.RESERVE], store._shas[lua.SETTLE])
        # Both charges reached the counter: two more $0.05 requests fill the $0.20 budget.
        assert [await spend(runner), await spend(runner), await spend(runner)] == [200, 200, 429]


async def test_settled_markers_expire_with_the_hold_ttl_not_after_a_day(
    database: str, authcore_redis_url: str, authcore_redis_prefix: str
) -> None:
    from redis.asyncio import Redis

    async with runner_on(Resources(database, authcore_redis_url, authcore_redis_prefix), hold_ttl_s=30) as runner:
        assert await spend(runner) == 200
    client = Redis.from_url(authcore_redis_url)
    try:
        markers = [key async for key in client.scan_iter(match=f"{authcore_redis_prefix}budgets:done:*")]
        assert len(markers) == 1
        # One marker per settled request: kept for two hold TTLs, enough for any retry of it.
        assert 50_000 < await client.pttl(markers[0]) <= 60_000
    finally:
        await client.aclose()


async def test_a_redis_restart_refuses_no_request_once_it_answers_again(tmp_path: Path) -> None:
    # The restarted server has the data (append-only file) but neither this process's connections nor its scripts.
    port = unused_port()
    durable = ("--appendonly", "yes", "--appendfsync", "always", "--dir", str(tmp_path))
    database = f"sqlite+aiosqlite:///{tmp_path / 'budgets.db'}"
    with own_redis(*durable, port=port) as (url, first):
        async with runner_on(Resources(database, url, "authcore-test:restart:")) as runner:
            assert await spend(runner) == 200
            first.terminate()
            first.wait(5)
            await asyncio.sleep(0.05)  # as a serving process would, it sees its connections close
            with own_redis(*durable, port=port):
                assert [await spend(runner) for _ in range(4)] == [200, 200, 200, 429]

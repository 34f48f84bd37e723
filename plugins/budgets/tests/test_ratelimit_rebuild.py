"""rpm and tpm limits lost with the store (a new process, Redis data loss) are rebuilt from the ledger."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis
from authcore_budgets.entities import LedgerFilter
from budget_helpers import RunnerFactory, budgets_of, chat

from authcore import Usage
from authcore.runner import Runner
from authcore.testing.services import delete_prefix

RATE_LIMITED = {
    "rpm": {"key_id": "k-rpm", "limits": {"rpm_limit": 3}},
    "tpm": {"key_id": "k-tpm", "limits": {"tpm_limit": 2000}},
    "per-model": {"key_id": "k-pm", "limits": {"model_rpm_limit": {"free": 1}}},
}
USED = Usage("m5c", 1, 1000)
"""1001 tokens a request."""


async def call(runner: Runner, who: str, *, completed: bool = True, **body: Any) -> int:
    result = await runner.authenticate(chat(who, **body))
    if result.error is None:
        result.usage = USED
        await runner.settle(result, completed=completed)
    return result.status_code


@pytest.fixture
def lose_rate_state(store_kind: str, request: pytest.FixtureRequest) -> Callable[[], None]:
    """What losing the store does between two runners: nothing more for the in-process store (a new one
    starts empty), the instance's keys deleted for Redis (what FLUSHALL does to it)."""
    if store_kind == "memory":
        return lambda: None
    url: str = request.getfixturevalue("authcore_redis_url")
    prefix: str = request.getfixturevalue("authcore_redis_prefix")

    def flush() -> None:
        assert delete_prefix(url, prefix) > 0

    return flush


def count_ledger_reads(runner: Runner) -> list[object]:
    """Wrap this runner's `Ledger.recent_use` (the real one still runs); the list grows per read."""
    ledger = budgets_of(runner).accountant.ledger
    reads: list[object] = []
    real: Callable[..., Awaitable[tuple[int, int]]] = ledger.recent_use

    async def counted(*args: Any) -> tuple[int, int]:
        reads.append(args)
        return await real(*args)

    ledger.recent_use = counted  # type: ignore[method-assign]
    return reads


async def test_rpm_is_rebuilt_counting_committed_and_released_requests(
    make_runner: RunnerFactory, lose_rate_state: Callable[[], None]
) -> None:
    async with make_runner(RATE_LIMITED) as runner:
        assert [await call(runner, "rpm") for _ in range(2)] == [200, 200]
        # Released (an upstream error, a disconnect): it was admitted, so it used its share of the minute.
        assert await call(runner, "rpm", completed=False) == 200
    lose_rate_state()
    async with make_runner(RATE_LIMITED) as runner:
        refused = await runner.authenticate(chat("rpm"))
        assert refused.status_code == 429
        assert refused.error is not None
        assert refused.error.reason_id == "rate_limited.rpm.key"
        # As if the three were used just now: the next share of the minute is 20 s away.
        assert 1 <= int(refused.error.response_headers()["retry-after"]) <= 20


async def test_tpm_is_rebuilt_from_the_tokens_recorded(
    make_runner: RunnerFactory, lose_rate_state: Callable[[], None]
) -> None:
    async with make_runner(RATE_LIMITED) as runner:
        assert [await call(runner, "tpm") for _ in range(2)] == [200, 200]  # 2002 of 2000 tokens
    lose_rate_state()
    async with make_runner(RATE_LIMITED) as runner:
        refused = await runner.authenticate(chat("tpm"))
        assert refused.error is not None
        assert refused.error.reason_id == "rate_limited.tpm.key"


async def test_a_per_model_limit_is_rebuilt_from_that_models_rows_only(
    make_runner: RunnerFactory, lose_rate_state: Callable[[], None]
) -> None:
    async with make_runner(RATE_LIMITED) as runner:
        # A zero-priced model: no budget applies, only the rate limit; its row still names the model.
        assert await call(runner, "per-model", model="free") == 200
        assert await call(runner, "per-model") == 200
    lose_rate_state()
    async with make_runner(RATE_LIMITED) as runner:
        assert await call(runner, "per-model", model="free") == 429
        assert await call(runner, "per-model") == 200


REDIS_ONLY = pytest.mark.parametrize("store_kind", [pytest.param("redis", marks=pytest.mark.services)])
"""For losses only Redis has while the process runs (the in-process store loses its state with its process)."""


@REDIS_ONLY
async def test_redis_data_loss_while_running_is_rebuilt_before_the_next_admission(
    store_kind: str, make_runner: RunnerFactory, lose_rate_state: Callable[[], None]
) -> None:
    async with make_runner(RATE_LIMITED) as runner:
        assert [await call(runner, "rpm") for _ in range(3)] == [200, 200, 200]
        lose_rate_state()
        reads = count_ledger_reads(runner)
        # Concurrent requests of the lost limit wait for one read of the ledger.
        statuses = await asyncio.gather(*(call(runner, "rpm") for _ in range(5)))
        assert statuses == [429] * 5
        assert len(reads) == 1


async def test_once_the_rebuild_window_is_over_a_quiet_limit_starts_afresh(
    store_kind: str, make_runner: RunnerFactory, request: pytest.FixtureRequest
) -> None:
    """A missing state then means a quiet minute, not a loss: no ledger read on the request path."""
    async with make_runner(RATE_LIMITED) as runner:
        plugin = budgets_of(runner)
        if store_kind == "memory":
            started = plugin.now_ms()
            plugin.now_ms = lambda: started + 61_000
        else:
            url: str = request.getfixturevalue("authcore_redis_url")
            prefix: str = request.getfixturevalue("authcore_redis_prefix")
            with redis.Redis.from_url(url) as client:
                client.set(f"{prefix}budgets:rates-rebuilt-until", 1)  # ended long ago
        reads = count_ledger_reads(runner)
        assert [await call(runner, "rpm") for _ in range(4)] == [200, 200, 200, 429]
        assert reads == []


async def test_every_request_a_rate_limit_applies_to_leaves_a_ledger_row(make_runner: RunnerFactory) -> None:
    parallel_only = {"key_id": "k-par", "limits": {"max_parallel_requests": 2}}
    async with make_runner({**RATE_LIMITED, "parallel": parallel_only}) as runner:
        assert await call(runner, "per-model", model="free") == 200
        assert await call(runner, "rpm", completed=False) == 200
        assert await call(runner, "parallel", model="free") == 200
        ledger = budgets_of(runner).accountant.ledger
        since = budgets_of(runner).now_ms() - 60_000
        assert await ledger.recent_use(LedgerFilter((("key_id", "k-pm"),), "free", since, None)) == (1, 1001)
        # Released: admitted, no tokens, no charge.
        assert await ledger.recent_use(LedgerFilter((("key_id", "k-rpm"),), None, since, None)) == (1, 0)
        assert await ledger.total(LedgerFilter((("key_id", "k-rpm"),), None, since, None)) == 0
        # Only parallel slots (not rebuilt from the ledger) and no price: nothing to record.
        assert await ledger.recent_use(LedgerFilter((("key_id", "k-par"),), None, since, None)) == (0, 0)


@REDIS_ONLY
async def test_a_request_settled_after_the_loss_does_not_stop_the_rebuild(
    store_kind: str, make_runner: RunnerFactory, lose_rate_state: Callable[[], None]
) -> None:
    async with make_runner(RATE_LIMITED) as runner:
        assert await call(runner, "tpm") == 200
        in_flight = await runner.authenticate(chat("tpm"))
        assert in_flight.error is None
        lose_rate_state()
        in_flight.usage = USED
        await runner.settle(in_flight, completed=True)
        # Both requests' tokens (2002 of 2000) come back from the ledger, not just the last one's.
        assert await call(runner, "tpm") == 429

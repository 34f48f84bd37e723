"""Redis on the request path: one script to reserve and one to settle, budgets and rate limits together."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from authcore_budgets.redis_store import RedisStore
from budget_helpers import budgets_of, chat, plugins

from authcore import Usage
from authcore.lean_redis import ScriptConnection, pack
from authcore.resources import Resources
from authcore.runner import Runner
from authcore.testing import started_runner

pytestmark = pytest.mark.services

LIMITED = {"key_id": "k1", "limits": {"max_budget": 0.20, "rpm_limit": 1000, "tpm_limit": 1_000_000}}
ROOMY = {"key_id": "k1", "limits": {"max_budget": 10, "rpm_limit": 1000}}


@pytest.fixture
async def runner(tmp_path: Path, authcore_redis_url: str, authcore_redis_prefix: str) -> AsyncIterator[Runner]:
    resources = Resources(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}", authcore_redis_url, authcore_redis_prefix)
    async with started_runner(plugins({"tok": LIMITED}), timeout_s=5, resources=resources) as started:
        yield started


def store_of(runner: Runner) -> RedisStore:
    store = budgets_of(runner).accountant.store
    assert isinstance(store, RedisStore)
    return store


class Calls:
    """Commands sent by the store: on its lean connection and through redis-py."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, store: RedisStore) -> None:
        self.lean: list[bytes] = []
        self.redis_py: list[Any] = []
        lean_call = ScriptConnection.call
        client = store._client
        redis_call: Callable[..., Awaitable[Any]] = client.execute_command

        async def on_lean(connection: ScriptConnection, command: bytes, *args: Any) -> Any:
            self.lean.append(command)
            return await lean_call(connection, command, *args)

        async def on_redis_py(*args: Any, **options: Any) -> Any:
            self.redis_py.append(args[0])
            return await redis_call(*args, **options)

        monkeypatch.setattr(ScriptConnection, "call", on_lean)
        monkeypatch.setattr(client, "execute_command", on_redis_py)

    def take(self) -> tuple[int, int]:
        found = (len(self.lean), len(self.redis_py))
        self.lean.clear()
        self.redis_py.clear()
        return found


async def test_a_budgeted_rate_limited_request_is_one_script_each_way(
    runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = store_of(runner)
    first = await runner.authenticate(chat("tok"))  # loads the counter from the ledger
    assert first.error is None
    await runner.settle(first, completed=True)
    calls = Calls(monkeypatch, store)
    for expected_left in ("998", "997", "996"):
        result = await runner.authenticate(chat("tok"))
        assert result.error is None
        assert calls.take() == (1, 0)
        (held,) = result.reservations
        assert held.headers["x-ratelimit-remaining-requests"] == expected_left
        assert "x-ratelimit-remaining-tokens" in held.headers
        result.usage = Usage("m5c", 1, 10)
        await runner.settle(result, completed=True)
        assert calls.take() == (1, 0)


async def test_without_the_lean_connection_the_same_bytes_go_through_redis_py(runner: Runner) -> None:
    store = store_of(runner)
    store._lean = None  # what a TLS client gets
    statuses = []
    for _ in range(5):
        result = await runner.authenticate(chat("tok"))
        statuses.append(result.status_code)
        if result.error is None:
            result.usage = Usage("m5c", 1, 1000)
            await runner.settle(result, completed=True)
    assert statuses == [200, 200, 200, 200, 429]  # $0.05 each against $0.20
    # A script unknown to the server is loaded again on this path too.
    from authcore_budgets import lua

    store._shas[lua.RESERVE] = "0" * 40
    denied = await runner.authenticate(chat("tok"))
    assert denied.status_code == 429
    assert denied.error is not None
    assert denied.error.reason_id == "budget_exceeded.key"


async def test_a_dropped_lean_connection_fails_closed_then_reconnects(runner: Runner) -> None:
    store = store_of(runner)
    first = await runner.authenticate(chat("tok"))
    assert first.error is None
    await runner.settle(first, completed=True)
    lean = store._lean
    assert lean is not None
    connection_id = int(await lean.call(pack("CLIENT", "ID")))
    # Only this connection is killed (the server is shared).
    assert await store._client.client_kill_filter(_id=str(connection_id)) == 1
    for _ in range(50):
        if lean._protocol is None or lean._protocol.lost is not None:
            break
        await asyncio.sleep(0.01)
    result = await runner.authenticate(chat("tok"))
    assert result.status_code == 200
    assert int(await lean.call(pack("CLIENT", "ID"))) != connection_id


async def test_concurrent_requests_share_the_connection_and_none_is_lost(runner: Runner) -> None:
    async def one() -> int:
        result = await runner.authenticate(chat("tok", max_tokens=10))
        if result.error is None:
            result.usage = Usage("m5c", 1, 10)  # $0.0005 each: 400 fit in $0.20
            await runner.settle(result, completed=True)
        return result.status_code

    statuses = await asyncio.gather(*(one() for _ in range(300)))
    assert statuses.count(200) == 300
    info = await store_of(runner).read(budgets_of(runner).counter(_key_rule(runner), {"key_id": "k1"}))
    assert info is not None
    assert (info.spent, info.reserved) == (300 * 500, 0)


def _key_rule(runner: Runner) -> Any:
    from authcore_budgets.entities import key_rules

    from authcore import Identity

    (rule,) = key_rules(Identity(auth_method="api_key", key_id="k1", limits=LIMITED["limits"]), "m5c")
    return rule


async def test_a_hung_redis_times_out_closed_and_late_replies_are_dropped(tmp_path: Path) -> None:
    from budget_helpers import own_redis

    database = f"sqlite+aiosqlite:///{tmp_path / 'hung.db'}"
    with own_redis() as (url, process):
        resources = Resources(database, url, "authcore-test:hung:")
        async with started_runner(
            plugins({"tok": ROOMY}, store_timeout_s=0.2), timeout_s=5, resources=resources
        ) as runner:
            first = await runner.authenticate(chat("tok"))
            assert first.status_code == 200
            await runner.settle(first, completed=True)
            process.send_signal(signal.SIGSTOP)
            try:
                started = time.perf_counter()
                hung = await asyncio.gather(*(runner.authenticate(chat("tok")) for _ in range(3)))
                assert [result.status_code for result in hung] == [503, 503, 503]
                assert time.perf_counter() - started < 2
            finally:
                process.send_signal(signal.SIGCONT)
            # The hung calls' replies arrive now and are dropped: each later call gets its own reply.
            # (Their scripts ran when Redis woke: their holds stay until hold_ttl_s, as with any timeout.)
            results = [await runner.authenticate(chat("tok")) for _ in range(3)]
            assert [result.status_code for result in results] == [200, 200, 200]
            remaining = [int(result.reservations[0].headers["x-ratelimit-remaining-requests"]) for result in results]
            assert remaining == sorted(remaining, reverse=True)
            assert len(set(remaining)) == 3


async def test_tls_and_unknown_connection_classes_keep_redis_py() -> None:
    from redis.asyncio import Redis

    plain = RedisStore(Redis.from_url("redis://127.0.0.1:6379/0"), "p:", timeout_s=0.5, done_ttl_ms=1000)
    tls = RedisStore(Redis.from_url("rediss://127.0.0.1:6379/0"), "p:", timeout_s=0.5, done_ttl_ms=1000)
    try:
        assert plain._lean is not None
        assert tls._lean is None  # the same pre-encoded bytes then go through redis-py's TLS connection
    finally:
        await plain.aclose()
        await tls.aclose()

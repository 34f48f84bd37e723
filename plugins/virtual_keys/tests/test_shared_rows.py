"""`shared_cache` with Redis: replicas share the key rows they read, never past a change or the freshness bound."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from .conftest import INSTANCE, Gateway, free_port, open_gateway

pytestmark = pytest.mark.services


@pytest.fixture
def replica(
    authcore_postgres_url: str, authcore_redis_url: str, authcore_redis_prefix: str
) -> Callable[..., contextlib.AbstractAsyncContextManager[Gateway]]:
    """A gateway on the shared Postgres and Redis: each call is another replica."""

    def start(**overrides: Any) -> contextlib.AbstractAsyncContextManager[Gateway]:
        return open_gateway(
            authcore_postgres_url,
            redis_url=authcore_redis_url,
            redis_prefix=authcore_redis_prefix,
            **{"shared_cache": True, **overrides},
        )

    return start


async def changes_sent(gw: Gateway) -> None:
    """Wait until the changes this replica made have been published (until then it reads no shared rows)."""
    bus = gw.plugin._bus
    for _ in range(200):
        if bus is None or not bus.sending:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("changes still being published after 1 s")


async def generated(gw: Gateway, **fields: Any) -> str:
    key = (await gw.generate(**fields))["key"]
    await changes_sent(gw)
    return str(key)


def count_database_reads(gw: Gateway) -> list[str]:
    """Wrap this replica's key lookups in the database (the real one still runs); the list grows per read."""
    store = gw.plugin.store
    reads: list[str] = []
    real: Callable[[str], Awaitable[Any]] = store.lookup_row

    async def counted(token: str) -> Any:
        reads.append(token)
        return await real(token)

    store.lookup_row = counted  # type: ignore[method-assign]
    return reads


@contextlib.asynccontextmanager
async def redis_client(url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(url)
    try:
        yield client
    finally:
        await client.aclose()


async def shared_entries(url: str, prefix: str) -> list[bytes]:
    """The shared rows' values, once the background write has landed (waits up to 1 s for one)."""
    async with redis_client(url) as client:
        for _ in range(100):
            keys = [key async for key in client.scan_iter(match=f"{prefix}vk:{INSTANCE}:row:*")]
            if keys:
                return [value for value in await client.mget(keys) if value is not None]
            await asyncio.sleep(0.01)
    return []


async def test_a_key_one_replica_read_is_served_to_another_without_the_database(
    replica: Callable[..., contextlib.AbstractAsyncContextManager[Gateway]],
    authcore_redis_url: str,
    authcore_redis_prefix: str,
) -> None:
    async with replica() as a, replica() as b:
        key = await generated(a, models=["gpt-4o"])
        a_reads, b_reads = count_database_reads(a), count_database_reads(b)
        assert (await a.chat(key)).status_code == 200
        assert len(a_reads) == 1
        assert await shared_entries(authcore_redis_url, authcore_redis_prefix)
        answer = await b.chat(key)
        assert answer.status_code == 200, answer.text
        assert b_reads == []
        # The same principal and the same checks as from the database.
        assert answer.json()["models"] == ["gpt-4o"]
        assert (await b.chat(key, model="o3")).status_code == 403


async def test_a_change_makes_rows_shared_before_it_stale_for_every_replica(
    replica: Callable[..., contextlib.AbstractAsyncContextManager[Gateway]],
    authcore_redis_url: str,
    authcore_redis_prefix: str,
) -> None:
    async with replica() as a:
        key = await generated(a)
        assert (await a.chat(key)).status_code == 200
        assert await shared_entries(authcore_redis_url, authcore_redis_prefix)
        assert (await a.admin("/key/block", {"key": key})).status_code == 200
        await changes_sent(a)
        # A replica that never saw the key (and so no invalidation message for it) must not get the old row.
        async with replica() as late:
            denied = await late.chat(key)
            assert denied.status_code == 403, denied.text
            assert denied.json()["error"]["code"] == "key_blocked"


async def test_a_row_from_redis_is_trusted_only_for_what_is_left_of_the_bound(
    replica: Callable[..., contextlib.AbstractAsyncContextManager[Gateway]],
    authcore_redis_url: str,
    authcore_redis_prefix: str,
) -> None:
    async with replica(cache_ttl_s=2.0) as a, replica(cache_ttl_s=2.0) as b:
        key = await generated(a)
        assert (await a.chat(key)).status_code == 200
        assert await shared_entries(authcore_redis_url, authcore_redis_prefix)
        await asyncio.sleep(1.0)
        b_reads = count_database_reads(b)
        assert (await b.chat(key)).status_code == 200
        assert b_reads == []  # from Redis, about 1 s old
        await asyncio.sleep(1.2)
        # Over 2 s after the database read: b must read again, although it got the row only 1.2 s ago.
        assert (await b.chat(key)).status_code == 200
        assert len(b_reads) == 1


async def test_shared_rows_hold_the_keyed_hash_never_the_key(
    replica: Callable[..., contextlib.AbstractAsyncContextManager[Gateway]],
    authcore_redis_url: str,
    authcore_redis_prefix: str,
) -> None:
    async with replica() as a:
        key = await generated(a, key_alias="canary")
        assert (await a.chat(key)).status_code == 200
        (entry,) = await shared_entries(authcore_redis_url, authcore_redis_prefix)
        assert key.encode() not in entry
        assert key[3:].encode() not in entry
        assert a.plugin.hasher.token(key).encode() in entry


async def test_without_a_reachable_redis_keys_come_from_the_database(
    authcore_postgres_url: str, authcore_redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    with caplog.at_level(logging.WARNING, logger="authcore.virtual_keys"):
        gateway = open_gateway(
            authcore_postgres_url, redis_url=url, redis_prefix=authcore_redis_prefix, shared_cache=True
        )
        async with gateway as gw:
            key = (await gw.generate())["key"]
            reads = count_database_reads(gw)
            assert [(await gw.chat(key)).status_code for _ in range(2)] == [200, 200]
            assert len(reads) == 1
    assert any("shared key cache unavailable" in record.getMessage() for record in caplog.records)


async def test_the_replica_that_made_a_change_never_serves_a_row_shared_before_it(
    replica: Callable[..., contextlib.AbstractAsyncContextManager[Gateway]],
    authcore_redis_url: str,
    authcore_redis_prefix: str,
) -> None:
    async with replica() as a:
        for _ in range(20):
            key = await generated(a)
            assert (await a.chat(key)).status_code == 200
            assert await shared_entries(authcore_redis_url, authcore_redis_prefix)
            assert (await a.admin("/key/block", {"key": key})).status_code == 200
            # At once, before the change has reached Redis: the old row must not come back from there.
            assert (await a.chat(key)).status_code == 403


async def test_without_shared_cache_nothing_is_shared(
    authcore_postgres_url: str, authcore_redis_url: str, authcore_redis_prefix: str
) -> None:
    async with open_gateway(
        authcore_postgres_url, redis_url=authcore_redis_url, redis_prefix=authcore_redis_prefix
    ) as gw:
        key = await generated(gw)
        assert (await gw.chat(key)).status_code == 200
        async with redis_client(authcore_redis_url) as client:
            assert [key async for key in client.scan_iter(match=f"{authcore_redis_prefix}vk:{INSTANCE}:row:*")] == []

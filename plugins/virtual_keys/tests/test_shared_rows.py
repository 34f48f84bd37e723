"""`shared_cache` with Redis: refreshes share the key rows they read, never past a change or the freshness bound."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from authcore_virtual_keys.tables import keys
from redis.asyncio import Redis

from authcore.lean_redis import ScriptConnection

from .conftest import INSTANCE, Gateway, free_port, open_gateway

pytestmark = pytest.mark.services

TTL = 2.0
"""`cache_ttl_s` of these replicas: long enough that a loaded machine still acts inside each window."""


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


def row_key(gw: Gateway, prefix: str, key: str) -> str:
    return f"{prefix}vk:{INSTANCE}:row:{gw.plugin.hasher.token(key)}"


async def shared_after_refresh(
    gw: Gateway, key: str, url: str, prefix: str, ttl_s: float, read_at: float | None = None
) -> float:
    """Use `key` on `gw` past every refresh point of its read at `read_at` (loop time; default now), before it
    expires, then wait until the row its refresh read is in Redis. Returns when that was (loop time)."""
    loop = asyncio.get_running_loop()
    start = loop.time() if read_at is None else read_at
    await asyncio.sleep(start + ttl_s * 0.85 - loop.time())
    assert (await gw.chat(key)).status_code == 200
    async with redis_client(url) as client:
        for _ in range(200):
            if await client.pttl(row_key(gw, prefix, key)) > ttl_s * 1000 * 0.8:
                return loop.time()
            await asyncio.sleep(0.01)
    raise AssertionError("no freshly read row shared within 2 s")


async def wait_for(condition: Callable[[], bool]) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met within 2 s")


async def test_a_refresh_reads_the_database_once_and_the_other_replicas_take_its_row(
    replica: Callable[..., contextlib.AbstractAsyncContextManager[Gateway]],
    authcore_redis_url: str,
    authcore_redis_prefix: str,
) -> None:
    # Replicas that read a key together would refresh it together; the first to refresh shares, the rest take it.
    async with replica(cache_ttl_s=TTL) as a, replica(cache_ttl_s=TTL) as b:
        key = await generated(a, models=["gpt-4o"])
        a_reads, b_reads = count_database_reads(a), count_database_reads(b)
        assert (await a.chat(key)).status_code == 200
        assert (await b.chat(key)).status_code == 200
        assert (len(a_reads), len(b_reads)) == (1, 1)
        # Nothing in Redis is as young as a's snapshot: its refresh reads the database and shares the row.
        refreshed = await shared_after_refresh(a, key, authcore_redis_url, authcore_redis_prefix, TTL)
        assert len(a_reads) == 2
        assert (await b.chat(key)).status_code == 200  # served; b's refresh takes a's row
        await asyncio.sleep(0.25 * TTL)  # past b's own read's expiry: b still holds the key, renewed from Redis
        assert b.plugin.cache.holds(b.plugin.hasher.token(key))
        assert len(b_reads) == 1
        # The same principal and the same checks as from the database.
        answer = await b.chat(key)
        assert answer.json()["models"] == ["gpt-4o"]
        assert (await b.chat(key, model="o3")).status_code == 403
        assert len(b_reads) == 1
        # Next round: the row in Redis is now as old as both replicas' snapshots, so taking it would renew nothing.
        await shared_after_refresh(a, key, authcore_redis_url, authcore_redis_prefix, TTL, refreshed)
        assert len(a_reads) == 3


async def test_a_request_never_waits_for_redis(
    replica: Callable[..., contextlib.AbstractAsyncContextManager[Gateway]],
    authcore_redis_url: str,
    authcore_redis_prefix: str,
) -> None:
    async with replica(cache_ttl_s=TTL) as a:
        key = await generated(a)
        assert (await a.chat(key)).status_code == 200
        await shared_after_refresh(a, key, authcore_redis_url, authcore_redis_prefix, TTL)
        async with replica(cache_ttl_s=TTL) as b:
            # Redis holds a young row, but a miss there would have cost this request a round trip.
            b_reads = count_database_reads(b)
            assert (await b.chat(key)).status_code == 200
            assert len(b_reads) == 1


async def test_a_change_makes_rows_shared_before_it_stale_for_every_replica(
    replica: Callable[..., contextlib.AbstractAsyncContextManager[Gateway]],
    authcore_redis_url: str,
    authcore_redis_prefix: str,
    authcore_postgres_url: str,
) -> None:
    async with replica(cache_ttl_s=TTL) as a, replica(cache_ttl_s=TTL) as b:
        key = await generated(a)
        assert (await a.chat(key)).status_code == 200
        assert (await b.chat(key)).status_code == 200
        await shared_after_refresh(a, key, authcore_redis_url, authcore_redis_prefix, TTL)
        # A change whose message b never gets: blocked in the database, and the generation incremented (what
        # the admin API does before it publishes). The row a shared was read before it.
        token = a.plugin.hasher.token(key)
        async with a.plugin.store.engine.begin() as connection:
            await connection.execute(keys.update().where(keys.c.token_hash == token).values(blocked=True))
        async with redis_client(authcore_redis_url) as client:
            await client.incr(f"{authcore_redis_prefix}vk:{INSTANCE}:generation")
        b_reads = count_database_reads(b)
        assert (await b.chat(key)).status_code == 200  # still within the bound; b's refresh starts
        await wait_for(lambda: len(b_reads) == 1)  # the shared row was ignored: b read the database
        await asyncio.sleep(0.05)
        denied = await b.chat(key)
        assert denied.status_code == 403, denied.text
        assert denied.json()["error"]["code"] == "key_blocked"


async def test_a_row_from_redis_is_trusted_only_for_what_is_left_of_the_bound(
    replica: Callable[..., contextlib.AbstractAsyncContextManager[Gateway]],
    authcore_redis_url: str,
    authcore_redis_prefix: str,
) -> None:
    ttl = 3.0
    async with replica(cache_ttl_s=ttl) as a, replica(cache_ttl_s=ttl) as b:
        key = await generated(a)
        token = b.plugin.hasher.token(key)
        assert (await a.chat(key)).status_code == 200
        assert (await b.chat(key)).status_code == 200
        start = asyncio.get_running_loop().time()
        await shared_after_refresh(a, key, authcore_redis_url, authcore_redis_prefix, ttl)  # a's read at ~2.55 s
        shared_at = asyncio.get_running_loop().time() - start
        b_reads = count_database_reads(b)
        await asyncio.sleep(2.85 - shared_at)
        assert (await b.chat(key)).status_code == 200  # b's refresh takes a's row, ~0.3 s old
        await asyncio.sleep(0.1)
        assert b_reads == []
        # b took the row at ~2.9 s, but its database read was at ~2.55 s: b must drop it ~5.55 s, not ~5.9 s.
        await asyncio.sleep(shared_at + ttl + 0.15 - (asyncio.get_running_loop().time() - start))
        assert not b.plugin.cache.holds(token)
        assert (await b.chat(key)).status_code == 200
        assert len(b_reads) == 1


async def test_shared_rows_hold_the_keyed_hash_never_the_key(
    replica: Callable[..., contextlib.AbstractAsyncContextManager[Gateway]],
    authcore_redis_url: str,
    authcore_redis_prefix: str,
) -> None:
    async with replica(cache_ttl_s=TTL) as a:
        key = await generated(a, key_alias="canary")
        assert (await a.chat(key)).status_code == 200
        await shared_after_refresh(a, key, authcore_redis_url, authcore_redis_prefix, TTL)
        (entry,) = await shared_entries(authcore_redis_url, authcore_redis_prefix)
        assert key.encode() not in entry
        assert key[3:].encode() not in entry
        assert a.plugin.hasher.token(key).encode() in entry


async def test_an_entry_changed_or_moved_in_redis_is_not_trusted(
    replica: Callable[..., contextlib.AbstractAsyncContextManager[Gateway]],
    authcore_redis_url: str,
    authcore_redis_prefix: str,
) -> None:
    # Whoever can write to Redis, without the hash secret, must not be able to widen a key.
    async with replica(cache_ttl_s=TTL) as a, replica(cache_ttl_s=TTL) as b:
        narrow = await generated(a, models=["gpt-4o"])
        wide = await generated(a, models=["gpt-4o", "o3"])
        for key in (narrow, wide):
            assert (await a.chat(key)).status_code == 200
            assert (await b.chat(key)).status_code == 200
        b_reads = count_database_reads(b)
        start = asyncio.get_running_loop().time()
        for key in (narrow, wide):
            await shared_after_refresh(a, key, authcore_redis_url, authcore_redis_prefix, TTL, start)
        async with redis_client(authcore_redis_url) as client:
            narrow_row, wide_row = row_key(a, authcore_redis_prefix, narrow), row_key(a, authcore_redis_prefix, wide)
            entry = await client.get(narrow_row)
            assert entry is not None
            assert b'["gpt-4o"]' in entry
            # Changed in place, the signature kept: b's refresh must read the database instead.
            await client.set(narrow_row, entry.replace(b'["gpt-4o"]', b'["gpt-4o","o3"]'), px=int(TTL * 1000))
            assert (await b.chat(narrow)).status_code == 200
            await wait_for(lambda: len(b_reads) == 1)
            # Another key's valid entry under this key's name: the same.
            await client.set(wide_row, entry, px=int(TTL * 1000))
            assert (await b.chat(wide)).status_code == 200
            await wait_for(lambda: len(b_reads) == 2)
        await asyncio.sleep(0.05)
        denied = await b.chat(narrow, model="o3")
        assert denied.status_code == 403, denied.text
        assert (await b.chat(wide, model="o3")).status_code == 200


async def test_without_a_secret_to_sign_them_rows_are_not_shared(
    authcore_postgres_url: str, authcore_redis_url: str, authcore_redis_prefix: str
) -> None:
    async with open_gateway(
        authcore_postgres_url,
        redis_url=authcore_redis_url,
        redis_prefix=authcore_redis_prefix,
        hash_mode="sha256",
        hash_secret=None,
        cache_ttl_s=TTL,
    ) as gw:
        assert gw.plugin._shared is None
        key = await generated(gw)
        assert (await gw.chat(key)).status_code == 200
        await asyncio.sleep(0.85 * TTL)
        assert (await gw.chat(key)).status_code == 200
        await asyncio.sleep(0.1)
        async with redis_client(authcore_redis_url) as client:
            assert [key async for key in client.scan_iter(match=f"{authcore_redis_prefix}vk:{INSTANCE}:row:*")] == []


async def test_a_refresh_that_cannot_reach_redis_reads_the_database(
    replica: Callable[..., contextlib.AbstractAsyncContextManager[Gateway]], caplog: pytest.LogCaptureFixture
) -> None:
    async with replica(cache_ttl_s=TTL) as gw:
        shared = gw.plugin._shared
        assert shared is not None
        # The shared rows' connection now leads nowhere (pub/sub keeps working, so the cache is not cleared).
        await shared.aclose()
        shared._lean = ScriptConnection({"host": "127.0.0.1", "port": free_port()})
        key = await generated(gw)
        reads = count_database_reads(gw)
        with caplog.at_level(logging.WARNING, logger="authcore.virtual_keys"):
            assert (await gw.chat(key)).status_code == 200
            await asyncio.sleep(0.85 * TTL)
            assert (await gw.chat(key)).status_code == 200  # served; the refresh falls back to the database
            await wait_for(lambda: len(reads) == 2)
            await asyncio.sleep(0.25 * TTL)  # past the first read's expiry
            assert gw.plugin.cache.holds(gw.plugin.hasher.token(key))
    assert any("shared key cache unavailable" in record.getMessage() for record in caplog.records)


async def test_without_shared_cache_nothing_is_shared(
    authcore_postgres_url: str, authcore_redis_url: str, authcore_redis_prefix: str
) -> None:
    async with open_gateway(
        authcore_postgres_url,
        redis_url=authcore_redis_url,
        redis_prefix=authcore_redis_prefix,
        shared_cache=False,
        cache_ttl_s=TTL,
    ) as gw:
        key = await generated(gw)
        reads = count_database_reads(gw)
        assert (await gw.chat(key)).status_code == 200
        await asyncio.sleep(0.85 * TTL)
        assert (await gw.chat(key)).status_code == 200
        await wait_for(lambda: len(reads) == 2)  # refreshed from the database
        await asyncio.sleep(0.1)
        async with redis_client(authcore_redis_url) as client:
            assert [key async for key in client.scan_iter(match=f"{authcore_redis_prefix}vk:{INSTANCE}:row:*")] == []

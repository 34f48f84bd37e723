"""The invalidation channel: what it carries, and what still holds when messages or the connection are lost."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from authcore_virtual_keys.invalidation import ALL, Change, InvalidationBus, channel_name
from redis.asyncio import Redis

from .conftest import INSTANCE, REVOCATION_BOUND_S, Replica, open_gateway, seconds_until, warm


def test_messages_round_trip() -> None:
    for change in (Change("key", "ab" * 32), Change("team", "research:eu"), Change("user", "ada"), ALL):
        assert Change.decode(change.encode().encode()) == change


def test_an_unreadable_message_drops_everything() -> None:
    for garbage in (b"", b"key:", b"shrug", b"\xff\xfe", b"token:abc"):
        assert Change.decode(garbage) == ALL


@contextlib.asynccontextmanager
async def listening(redis_url: str, channel: str) -> AsyncIterator[list[bytes]]:
    """Collect every message published on `channel` while inside."""
    client = Redis.from_url(redis_url)
    pubsub = client.pubsub()
    await pubsub.subscribe(channel)
    received: list[bytes] = []

    async def collect() -> None:
        async for message in pubsub.listen():
            if message["type"] == "message":
                received.append(message["data"])

    task = asyncio.create_task(collect())
    try:
        yield received
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()


@pytest.mark.services
async def test_the_channel_carries_hashes_and_ids_never_a_raw_key(
    replica: Replica, authcore_redis_url: str, authcore_redis_prefix: str
) -> None:
    async with replica() as a, listening(authcore_redis_url, channel_name(authcore_redis_prefix, INSTANCE)) as seen:
        key = (await a.generate())["key"]
        assert (await a.admin("/key/block", {"key": key})).status_code == 200
        assert (await a.admin("/key/delete", {"keys": [key]})).status_code == 200
        token = a.plugin.hasher.token(key)
        deadline = time.monotonic() + REVOCATION_BOUND_S
        while len(seen) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    assert seen == [f"key:{token}".encode()] * 3
    assert not any(key.encode() in message or key[3:].encode() in message for message in seen)


@pytest.mark.services
async def test_a_lost_message_is_covered_by_the_freshness_bound(
    replica: Replica, monkeypatch: pytest.MonkeyPatch
) -> None:
    ttl = 0.5
    async with replica(cache_ttl_s=ttl) as a, replica(cache_ttl_s=ttl) as b:
        key = (await a.generate())["key"]
        monkeypatch.setattr(InvalidationBus, "publish", lambda self, change: None)
        await warm(b, key)
        cached_at = time.monotonic()

        assert (await a.admin("/key/block", {"key": key})).status_code == 200
        asked_at = time.monotonic()
        stale = await b.chat(key)
        if asked_at - cached_at < ttl:
            # Nothing told B: it still trusts its copy.
            assert stale.status_code == 200
        await seconds_until(403, lambda: b.chat(key), REVOCATION_BOUND_S)
        assert time.monotonic() - cached_at < ttl + 0.2


def with_client_name(redis_url: str, name: str) -> str:
    return f"{redis_url}{'&' if '?' in redis_url else '?'}client_name={name}"


async def kill_subscriber(redis_url: str, name: str) -> None:
    """Close, from the server side, the subscription connection of the replica whose connections carry `name`."""
    client = Redis.from_url(redis_url)
    try:
        ids = [entry["id"] for entry in await client.client_list(_type="pubsub") if entry.get("name") == name]
        assert len(ids) == 1, ids
        await client.client_kill_filter(_id=ids[0])
    finally:
        await client.aclose()


@pytest.mark.services
async def test_a_dropped_subscription_clears_the_cache_and_comes_back(
    replica: Replica, authcore_redis_url: str
) -> None:
    name = f"vk-test-{uuid.uuid4().hex[:12]}"
    async with replica() as a, replica(with_client_name(authcore_redis_url, name)) as b:
        bus = b.plugin._bus
        assert bus is not None
        assert bus.subscribed
        key = (await a.generate())["key"]
        await warm(b, key)

        await kill_subscriber(authcore_redis_url, name)

        deadline = time.monotonic() + REVOCATION_BOUND_S
        while bus.resubscriptions < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert bus.resubscriptions == 2
        assert not b.plugin.cache.holds(b.plugin.hasher.token(key))

        # Subscribed again: the next change reaches B.
        await warm(b, key)
        assert (await a.admin("/key/block", {"key": key})).status_code == 200
        await seconds_until(403, lambda: b.chat(key), REVOCATION_BOUND_S)


@pytest.mark.services
async def test_without_a_reachable_redis_keys_still_work_and_blocks_apply_here(authcore_postgres_url: str) -> None:
    unreachable = "redis://127.0.0.1:1/0"
    async with open_gateway(authcore_postgres_url, redis_url=unreachable, redis_prefix="vk-unreachable:") as gw:
        assert gw.plugin._bus is not None
        assert not gw.plugin._bus.subscribed
        key = (await gw.generate())["key"]
        assert (await gw.chat(key)).status_code == 200
        assert (await gw.admin("/key/block", {"key": key})).status_code == 200
        assert (await gw.chat(key)).status_code == 403


@pytest.mark.services
async def test_a_redis_outage_does_not_empty_the_cache_at_every_reconnect_attempt(authcore_postgres_url: str) -> None:
    unreachable = "redis://127.0.0.1:1/0"
    async with open_gateway(authcore_postgres_url, redis_url=unreachable, redis_prefix="vk-unreachable:") as gw:
        key = (await gw.generate())["key"]
        assert (await gw.chat(key)).status_code == 200
        token = gw.plugin.hasher.token(key)
        # The subscriber retries at 0.05, 0.1, 0.2, 0.4 s...: several failed attempts within this second.
        await asyncio.sleep(1.0)
        assert gw.plugin.cache.holds(token)

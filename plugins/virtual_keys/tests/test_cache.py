"""The snapshot cache on its own: single flight, invalidation during a read, cancellation."""

from __future__ import annotations

import asyncio

import pytest
from authcore_virtual_keys.cache import SnapshotCache
from authcore_virtual_keys.records import KeySnapshot, snapshot_from_row

from authcore import DependencyFailure


def snapshot(token: str, *, blocked: bool = False) -> KeySnapshot:
    return snapshot_from_row({"token_hash": token, "models": [], "metadata": {}, "blocked": blocked})


class SlowLoader:
    """A loader that answers when released, counting calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()
        self.answer: KeySnapshot | None = snapshot("t")

    async def __call__(self, token: str) -> KeySnapshot | None:
        self.calls += 1
        await self.release.wait()
        return self.answer


def make_cache(loader: SlowLoader, ttl: float = 10) -> SnapshotCache:
    return SnapshotCache(loader, ttl=ttl, negative_ttl=5, negative_size=10)


async def test_read_started_before_an_invalidation_is_not_kept() -> None:
    loader = SlowLoader()
    cache = make_cache(loader)
    before = asyncio.create_task(cache.get("t"))
    await asyncio.sleep(0)

    cache.invalidate("t")
    loader.answer = snapshot("t", blocked=True)
    after = asyncio.create_task(cache.get("t"))
    await asyncio.sleep(0)
    loader.release.set()

    await before
    fresh = await after
    assert fresh is not None
    assert fresh.blocked is True
    assert loader.calls == 2
    cached = await cache.get("t")
    assert cached is not None
    assert cached.blocked is True
    assert loader.calls == 2


async def test_a_cancelled_waiter_does_not_cancel_the_read() -> None:
    loader = SlowLoader()
    cache = make_cache(loader)
    first = asyncio.create_task(cache.get("t"))
    second = asyncio.create_task(cache.get("t"))
    await asyncio.sleep(0)

    first.cancel()
    loader.release.set()

    assert await second is not None
    assert loader.calls == 1


async def test_a_failed_read_reaches_every_waiter_and_is_not_cached() -> None:
    calls = 0

    async def failing(token: str) -> KeySnapshot | None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        raise DependencyFailure(reason_id="key_store_unavailable")

    cache = SnapshotCache(failing, ttl=10, negative_ttl=5, negative_size=10)
    results = await asyncio.gather(*(cache.get("t") for _ in range(3)), return_exceptions=True)

    assert all(isinstance(result, DependencyFailure) for result in results)
    assert calls == 1
    with pytest.raises(DependencyFailure):
        await cache.get("t")
    assert calls == 2


async def test_negative_cache_is_bounded() -> None:
    loader = SlowLoader()
    loader.answer = None
    loader.release.set()
    cache = SnapshotCache(loader, ttl=10, negative_ttl=5, negative_size=2)

    for token in ("a", "b", "c"):
        await cache.get(token)
    await cache.get("a")

    assert loader.calls == 4

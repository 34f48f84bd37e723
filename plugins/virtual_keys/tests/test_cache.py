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

    async def __call__(self, token: str, max_age_s: float) -> KeySnapshot | None:
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


async def test_a_change_to_another_key_keeps_a_read_in_flight() -> None:
    # Under a stream of admin changes (keys created every millisecond), reads of other keys must still be kept.
    loader = SlowLoader()
    cache = make_cache(loader)
    reading = asyncio.create_task(cache.get("t"))
    await asyncio.sleep(0)
    cache.invalidate("u")
    loader.release.set()
    assert await reading is not None
    assert cache.holds("t")
    await cache.get("t")
    assert loader.calls == 1


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

    async def failing(token: str, max_age_s: float) -> KeySnapshot | None:
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


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingLoader:
    """Answers at once with the current `answer`, recording each call's `max_age_s`; `fail` makes it raise."""

    def __init__(self) -> None:
        self.answer: KeySnapshot | None = snapshot("t")
        self.max_ages: list[float] = []
        self.fail = False

    async def __call__(self, token: str, max_age_s: float) -> KeySnapshot | None:
        self.max_ages.append(max_age_s)
        await asyncio.sleep(0)
        if self.fail:
            raise DependencyFailure(reason_id="key_store_unavailable")
        return self.answer


def clocked(loader: CountingLoader, clock: Clock) -> SnapshotCache:
    return SnapshotCache(loader, ttl=10, negative_ttl=5, negative_size=10, clock=clock)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_key_in_use_is_read_again_in_the_background_before_it_expires() -> None:
    loader, clock = CountingLoader(), Clock()
    cache = clocked(loader, clock)
    assert await cache.get("t") is not None
    clock.now += 4.9  # before any refresh point (at 5 to 8 s)
    assert cache.fresh("t") is not None
    await settle()
    assert len(loader.max_ages) == 1

    loader.answer = snapshot("t", blocked=True)
    clock.now += 3.2  # past every refresh point, before expiry: served as it is, read once meanwhile
    served = [cache.fresh("t") for _ in range(3)]
    assert all(found is not None and not found.blocked for found in served)
    await settle()
    # A request waits for the database alone; a refresh accepts a shared row younger than the earliest refresh point.
    assert loader.max_ages == [0.0, 5]
    renewed = cache.fresh("t")
    assert renewed is not None
    assert renewed.blocked  # the refreshed read replaced the snapshot
    clock.now += 4.9  # the new read's clock started at the refresh, 8.1 s after the first
    assert cache.fresh("t") is renewed
    await settle()
    assert len(loader.max_ages) == 2


async def test_a_failed_refresh_serves_the_snapshot_until_it_expires_then_fails_closed() -> None:
    loader, clock = CountingLoader(), Clock()
    cache = clocked(loader, clock)
    await cache.get("t")
    loader.fail = True
    clock.now += 8.5
    assert cache.fresh("t") is not None
    await settle()
    assert len(loader.max_ages) == 2
    clock.now += 1.0
    assert cache.fresh("t") is not None
    await settle()
    assert len(loader.max_ages) == 2  # one refresh per snapshot, not one per request
    clock.now += 1.0  # expired: the request itself reads, and the failure denies it
    assert cache.fresh("t") is None
    with pytest.raises(DependencyFailure):
        await cache.get("t")


async def test_a_refresh_that_finds_the_key_gone_drops_it() -> None:
    loader, clock = CountingLoader(), Clock()
    cache = clocked(loader, clock)
    await cache.get("t")
    loader.answer = None
    clock.now += 8.5
    assert cache.fresh("t") is not None
    await settle()
    assert not cache.holds("t")
    assert await cache.get("t") is None


async def test_a_refresh_running_across_a_change_is_not_kept() -> None:
    loader, clock = SlowLoader(), Clock()
    cache = SnapshotCache(loader, ttl=10, negative_ttl=5, negative_size=10, clock=clock)
    loader.release.set()
    await cache.get("t")
    loader.release.clear()
    clock.now += 8.5
    assert cache.fresh("t") is not None  # starts the refresh, which waits for `release`
    await settle()
    cache.invalidate("t")
    loader.release.set()
    await settle()
    assert not cache.holds("t")
    assert loader.calls == 2

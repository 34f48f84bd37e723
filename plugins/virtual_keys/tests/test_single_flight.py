"""One database read for concurrent first requests; bounded freshness; negative caching."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from .conftest import Gateway, GatewayFactory


@contextmanager
def key_lookups(gw: Gateway) -> Iterator[list[str]]:
    """Statements reading the keys table while the block runs.

    On Postgres a key is read on its own read pool, on the driver connection,
    where SQLAlchemy sees no statement: there each checkout of that pool is one
    read (nothing else uses it).
    """
    seen: list[str] = []

    def before_cursor_execute(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "FROM vk_keys" in statement:
            seen.append(statement)

    def checkout(*_: Any) -> None:
        seen.append("read pool checkout")

    engine = gw.resources.engine().sync_engine
    reads = gw.resources.read_engine().sync_engine
    listeners = [(engine, "before_cursor_execute", before_cursor_execute)]
    if reads is not engine:
        listeners.append((reads, "checkout", checkout))
    for target, name, listener in listeners:
        event.listen(target, name, listener)
    try:
        yield seen
    finally:
        for target, name, listener in listeners:
            event.remove(target, name, listener)


async def test_concurrent_first_requests_share_one_query(gw: Gateway) -> None:
    created = await gw.generate()

    with key_lookups(gw) as first_burst:
        responses = await asyncio.gather(*(gw.chat(created["key"]) for _ in range(20)))
    with key_lookups(gw) as second_burst:
        again = await asyncio.gather(*(gw.chat(created["key"]) for _ in range(5)))

    assert [response.status_code for response in responses] == [200] * 20
    assert len(first_burst) == 1
    assert [response.status_code for response in again] == [200] * 5
    assert second_burst == []


async def test_unknown_key_is_read_once_then_remembered(gw: Gateway) -> None:
    unknown = "sk-" + "U" * 43

    with key_lookups(gw) as first_burst:
        responses = await asyncio.gather(*(gw.chat(unknown) for _ in range(10)))
    with key_lookups(gw) as later:
        assert (await gw.chat(unknown)).status_code == 401

    assert [response.status_code for response in responses] == [401] * 10
    assert len(first_burst) == 1
    assert later == []


async def test_cached_key_is_read_again_after_the_ttl(make_gateway: GatewayFactory) -> None:
    async with make_gateway(cache_ttl_s=0.2) as gw:
        created = await gw.generate()
        assert (await gw.chat(created["key"])).status_code == 200

        with key_lookups(gw) as fresh:
            await gw.chat(created["key"])
        await asyncio.sleep(0.25)
        with key_lookups(gw) as stale:
            await gw.chat(created["key"])

    assert fresh == []
    assert len(stale) == 1


async def test_negative_cache_can_be_disabled(make_gateway: GatewayFactory) -> None:
    async with make_gateway(negative_cache_size=0) as gw:
        unknown = "sk-" + "V" * 43
        await gw.chat(unknown)

        with key_lookups(gw) as again:
            await gw.chat(unknown)

    assert len(again) == 1

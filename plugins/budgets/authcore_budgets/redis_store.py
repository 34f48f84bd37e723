"""Counters in Redis, shared by every replica: one script reserves, one settles, one loads a counter."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from redis.exceptions import NoScriptError, ResponseError

from authcore import ConfigurationError
from authcore_budgets import lua
from authcore_budgets.entities import Counter
from authcore_budgets.ratelimits import RateLimit, RateOutcome, interval_us
from authcore_budgets.store import CounterState, ReserveOutcome

if TYPE_CHECKING:
    from redis.asyncio import Redis

SAFE_EVICTION_POLICIES = frozenset({"noeviction"})
"""Every other policy may evict a counter, or a hold, under memory pressure and admit overspend."""


async def check_eviction_policy(client: Redis) -> None:
    """Refuse a Redis that may evict keys: a dropped counter would re-admit spent budget."""
    try:
        policy = await client.config_get("maxmemory-policy")
    except ResponseError:
        raise ConfigurationError(
            "budgets: cannot read the Redis maxmemory-policy (CONFIG GET is refused); "
            "the counters need maxmemory-policy noeviction"
        ) from None
    value = policy.get("maxmemory-policy")
    value = value.decode() if isinstance(value, bytes) else value
    if value not in SAFE_EVICTION_POLICIES:
        raise ConfigurationError(
            f"budgets: Redis maxmemory-policy is {value!r}; it can evict budget counters. "
            "Set maxmemory-policy noeviction on this Redis (or use a dedicated one)."
        )


POOL_SIZE = 1024
"""Most connections of the store's own pool: one per Redis call in flight in this process."""


def dedicated_client(shared: Redis, *, pool_size: int = POOL_SIZE) -> Redis:
    """A client for the shared client's server and settings, with room for a burst of concurrent calls.

    The shared pool (100 connections) raises `MaxConnectionsError` when all are
    busy, which refuses budgeted requests (503) under a burst: every in-flight
    request holds a connection for its reservation and, after its response, for
    its settlement. A blocking pool would wait instead, but costs about 10 µs
    per call (a condition variable); a larger plain pool costs nothing until used.
    """
    from redis.asyncio import ConnectionPool
    from redis.asyncio import Redis as Client

    pool = shared.connection_pool
    own = ConnectionPool(connection_class=pool.connection_class, max_connections=pool_size, **pool.connection_kwargs)
    return Client(connection_pool=own)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisStore:
    """Counters under `<prefix>budgets:`. Needs a single Redis node (the scripts span several keys)."""

    kind = "redis"

    def __init__(self, client: Redis, prefix: str, *, timeout_s: float, done_ttl_ms: int) -> None:
        self._client = client
        self._base = f"{prefix}budgets:"
        self._timeout = timeout_s
        self._done_ttl = done_ttl_ms
        self._shas: dict[str, str] = {}
        self._checked = False

    def counter_key(self, counter: Counter) -> str:
        return f"{self._base}c:{counter.name}"

    async def prepare(self, timeout_s: float | None = None) -> None:
        """Check the eviction policy and load the scripts (SCRIPT LOAD), once per process."""
        if self._checked:
            return
        async with asyncio.timeout(timeout_s or self._timeout):
            await check_eviction_policy(self._client)
            for source in (lua.RESERVE, lua.SETTLE, lua.INITIALISE, lua.RATE_ACQUIRE, lua.RATE_SETTLE):
                self._shas[source] = str(await self._client.script_load(source))
        self._checked = True

    async def _run(self, source: str, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        if not self._checked:
            await self.prepare()
        async with asyncio.timeout(self._timeout):
            try:
                return await self._client.evalsha(self._shas[source], len(keys), *keys, *args)
            except NoScriptError:
                # The server restarted or SCRIPT FLUSH ran: load again and retry once.
                self._shas[source] = str(await self._client.script_load(source))
                return await self._client.evalsha(self._shas[source], len(keys), *keys, *args)

    async def reserve(self, request_id: str, counters: Sequence[Counter], amount: int, hold_ms: int) -> ReserveOutcome:
        args: list[str | int] = [request_id, amount, hold_ms]
        for counter in counters:
            args.extend((counter.limit, counter.expire_at_ms))
        reply = await self._run(lua.RESERVE, [self.counter_key(c) for c in counters], args)
        status = int(reply[0])
        if status == 0:
            return ReserveOutcome(True)
        if status == 1:
            return ReserveOutcome(False, denied_index=int(reply[1]) - 1)
        return ReserveOutcome(False, missing=tuple(int(index) - 1 for index in reply[1]))

    async def settle(self, request_id: str, counters: Sequence[Counter], actual: int | None) -> list[int] | None:
        keys = [f"{self._base}done:{request_id}", *(self.counter_key(c) for c in counters)]
        args: list[str | int] = [request_id, -1 if actual is None else actual, self._done_ttl]
        args.extend(counter.expire_at_ms for counter in counters)
        reply = await self._run(lua.SETTLE, keys, args)
        if reply and int(reply[0]) == -2:
            return None
        return [int(value) for value in reply]

    async def late_charges(self, counter: Counter) -> dict[str, int] | None:
        async with asyncio.timeout(self._timeout):
            fields = await self._client.hgetall(self.counter_key(counter))
        names = {_text(name): value for name, value in fields.items()}
        if "i" in names:
            return None
        return {name[2:]: int(value) for name, value in names.items() if name.startswith("l:")}

    async def initialise(self, counter: Counter, spent: int, seen_late: Collection[str]) -> bool:
        args: list[str | int] = [spent, counter.expire_at_ms, len(seen_late), *seen_late]
        return int(await self._run(lua.INITIALISE, [self.counter_key(counter)], args)) == 1

    async def read(self, counter: Counter) -> CounterState | None:
        async with asyncio.timeout(self._timeout):
            values = await self._client.hmget(self.counter_key(counter), ["i", "spent", "reserved"])
        if values[0] is None:
            return None
        # Holds of a crashed replica still count here until the next reservation drops them.
        return CounterState(int(values[1] or 0), int(values[2] or 0))

    def rate_key(self, limit: RateLimit) -> str:
        return f"{self._base}r:{limit.name}"

    async def acquire_rates(self, request_id: str, limits: Sequence[RateLimit], hold_ms: int) -> RateOutcome:
        args: list[str | int] = [request_id, hold_ms * 1000]
        for limit in limits:
            args.extend((limit.kind, limit.limit, repr(interval_us(limit))))
        reply = await self._run(lua.RATE_ACQUIRE, [self.rate_key(limit) for limit in limits], args)
        if int(reply[0]) == 0:
            return RateOutcome(True)
        return RateOutcome(False, int(reply[1]) - 1, max(1, int(reply[2])))

    async def settle_rates(self, request_id: str, limits: Sequence[RateLimit], tokens: int) -> None:
        args: list[str | int] = [request_id, tokens]
        for limit in limits:
            args.extend((limit.kind, repr(interval_us(limit))))
        await self._run(lua.RATE_SETTLE, [self.rate_key(limit) for limit in limits], args)

    async def aclose(self) -> None:
        """Close this store's own client and pool (the shared client is the resources' to close)."""
        await self._client.aclose()
        await self._client.connection_pool.disconnect()

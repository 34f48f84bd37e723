"""Counters and rate limits in Redis, shared by every replica: one script reserves, one settles, one loads."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from redis.exceptions import NoScriptError, ResponseError

from authcore import ConfigurationError
from authcore.lean_redis import ScriptConnection, bulk
from authcore_budgets import lua
from authcore_budgets.entities import Counter
from authcore_budgets.ratelimits import WINDOW_US, RateLimit
from authcore_budgets.store import ADMITTED, CounterState, ReserveOutcome

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


PLAN_CACHE = 4096
"""Pre-encoded command parts kept, one per plan in use (the plan cache holds the same tuples)."""
_EVALSHA = bulk("EVALSHA")


class RedisStore:
    """Counters under `<prefix>budgets:`. Needs a single Redis node (the scripts span several keys).

    RESERVE and SETTLE, the request path, go through a lean pipelined connection
    (`authcore.lean_redis.ScriptConnection`) with the parts that depend only on the plan encoded
    once; a TLS or otherwise unusual client sends the same bytes on a redis-py
    connection instead. Everything else uses redis-py.
    """

    kind = "redis"

    def __init__(self, client: Redis, prefix: str, *, timeout_s: float, done_ttl_ms: int, lean: bool = True) -> None:
        self._client = client
        self._base = f"{prefix}budgets:"
        self._rebuild_key = f"{self._base}rates-rebuilt-until"
        self._timeout = timeout_s
        self._done_ttl = done_ttl_ms
        self._shas: dict[str, str] = {}
        self._checked = False
        pool = client.connection_pool
        supported = ScriptConnection.supports(pool.connection_class, pool.connection_kwargs)
        self._lean = ScriptConnection(pool.connection_kwargs) if lean and supported else None
        self.cancel_safe = self._lean is not None
        """The lean connection queues a command before it waits (connecting included); redis-py may not send it."""
        self._reserve_parts: dict[tuple[int, int, int], tuple[object, object, bytes, int]] = {}
        self._settle_parts: dict[tuple[int, int], tuple[object, object, bytes, bytes, int]] = {}

    def counter_key(self, counter: Counter) -> str:
        return f"{self._base}c:{counter.name}"

    def rate_key(self, limit: RateLimit) -> str:
        return f"{self._base}r:{limit.name}"

    async def prepare(self, timeout_s: float | None = None) -> None:
        """Check the eviction policy and load the scripts (SCRIPT LOAD), once per process."""
        if self._checked:
            return
        async with asyncio.timeout(timeout_s or self._timeout):
            await check_eviction_policy(self._client)
            for source in (lua.RESERVE, lua.SETTLE, lua.INITIALISE, lua.INIT_RATE):
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

    async def _send(self, command: bytes) -> Any:
        if self._lean is not None:
            return await self._lean.call(command, self._timeout)
        async with asyncio.timeout(self._timeout):
            pool = self._client.connection_pool
            connection = await pool.get_connection()  # type: ignore[no-untyped-call]
            try:
                await connection.send_packed_command(command)
                return await connection.read_response()
            except BaseException:
                # A reply may still be on its way: this connection is out of step.
                await connection.disconnect(nowait=True)
                raise
            finally:
                await pool.release(connection)

    async def _script(self, source: str, count: int, body: bytes) -> Any:
        """EVALSHA of `source` with `body` (its keys and arguments, `count` of them, already encoded).

        Each send is bounded by the store timeout (the lean connection keeps its own
        deadlines: cheaper than an `asyncio.timeout` per call).
        """
        if not self._checked:
            await self.prepare()
        try:
            return await self._send(b"*%d\r\n%s%s%s" % (count + 2, _EVALSHA, bulk(self._shas[source]), body))
        except NoScriptError:
            # The server restarted or SCRIPT FLUSH ran: load again and retry once.
            async with asyncio.timeout(self._timeout):
                self._shas[source] = str(await self._client.script_load(source))
            return await self._send(b"*%d\r\n%s%s%s" % (count + 2, _EVALSHA, bulk(self._shas[source]), body))

    def _reserve_prefix(
        self, counters: Sequence[Counter], rates: Sequence[RateLimit], hold_ms: int
    ) -> tuple[bytes, int]:
        """numkeys, the keys and the plan's arguments, encoded; the plan's tuples are reused across requests."""
        key = (id(counters), id(rates), hold_ms)
        cached = self._reserve_parts.get(key)
        if cached is not None and cached[0] is counters and cached[1] is rates:
            return cached[2], cached[3]
        keys = [self.counter_key(c) for c in counters] + [self.rate_key(r) for r in rates] + [self._rebuild_key]
        args: list[str | int] = [len(counters), hold_ms]
        for counter in counters:
            args += (counter.limit, counter.expire_at_ms)
        for limit in rates:
            args += (limit.kind, limit.limit, repr(limit.interval_us))
        parts = [bulk(len(keys)), *(bulk(k) for k in keys), *(bulk(a) for a in args)]
        encoded, count = b"".join(parts), len(parts)
        if len(self._reserve_parts) >= PLAN_CACHE:
            self._reserve_parts.clear()
        self._reserve_parts[key] = (counters, rates, encoded, count)
        return encoded, count

    def _settle_parts_of(self, counters: Sequence[Counter], rates: Sequence[RateLimit]) -> tuple[bytes, bytes, int]:
        key = (id(counters), id(rates))
        cached = self._settle_parts.get(key)
        if cached is not None and cached[0] is counters and cached[1] is rates:
            return cached[2], cached[3], cached[4]
        keys = [self.counter_key(c) for c in counters] + [self.rate_key(r) for r in rates] + [self._rebuild_key]
        args: list[str | int] = [len(counters), self._done_ttl, *(c.expire_at_ms for c in counters)]
        for limit in rates:
            args += (limit.kind, repr(limit.interval_us))
        before = bulk(len(keys) + 1) + b"".join(bulk(k) for k in keys)
        after = b"".join(bulk(a) for a in args)
        count = 1 + len(keys) + 1 + len(args)
        if len(self._settle_parts) >= PLAN_CACHE:
            self._settle_parts.clear()
        self._settle_parts[key] = (counters, rates, before, after, count)
        return before, after, count

    async def reserve(
        self,
        request_id: str,
        counters: Sequence[Counter],
        amount: int,
        hold_ms: int,
        rates: Sequence[RateLimit] = (),
    ) -> ReserveOutcome:
        prefix, count = self._reserve_prefix(counters, rates, hold_ms)
        reply = await self._script(lua.RESERVE, count + 2, prefix + bulk(request_id) + bulk(amount))
        status = reply[0]
        if status == 0:
            return ReserveOutcome(True, left=tuple(reply[1:])) if rates else ADMITTED
        if status == 3:
            return ReserveOutcome(False, rate_index=int(reply[1]) - 1, retry_after_ms=max(1, int(reply[2])))
        if status == 1:
            return ReserveOutcome(False, denied_index=int(reply[1]) - 1)
        if status == 4:
            return ReserveOutcome(False, missing_rates=tuple(int(index) - 1 for index in reply[1]))
        return ReserveOutcome(False, missing=tuple(int(index) - 1 for index in reply[1]))

    async def settle(
        self,
        request_id: str,
        counters: Sequence[Counter],
        actual: int | None,
        rates: Sequence[RateLimit] = (),
        tokens: int = 0,
    ) -> list[int] | None:
        before, after, count = self._settle_parts_of(counters, rates)
        marker = bulk(f"{self._base}done:{request_id}")
        tail = bulk(request_id) + bulk(-1 if actual is None else actual) + bulk(tokens)
        reply = await self._script(lua.SETTLE, count + 3, before + marker + after + tail)
        if reply and reply[0] == -2:
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

    async def init_rate(self, limit: RateLimit, used: int) -> None:
        args: list[str | int] = [used, repr(limit.interval_us), WINDOW_US // 1000]
        await self._run(lua.INIT_RATE, [self.rate_key(limit), self._rebuild_key], args)

    async def read(self, counter: Counter) -> CounterState | None:
        async with asyncio.timeout(self._timeout):
            values = await self._client.hmget(self.counter_key(counter), ["i", "spent", "reserved"])
        if values[0] is None:
            return None
        # Holds of a crashed replica still count here until the next reservation drops them.
        return CounterState(int(values[1] or 0), int(values[2] or 0))

    async def aclose(self) -> None:
        """Close this store's own clients and pool (the shared client is the resources' to close)."""
        if self._lean is not None:
            await self._lean.aclose()
        await self._client.aclose()
        await self._client.connection_pool.disconnect()

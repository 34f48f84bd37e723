"""Key rows shared between replicas through Redis: a replica that misses its own cache reads Redis before the database.

One entry per key hash (`<prefix>vk:<instance>:row:<hash>`) holds the row the key
lookup read and the generation it was read under, and expires `cache_ttl_s` after
that read.
Every admin change increments the generation (`bump`, before the change is
published to the replicas), so an entry written before a change is never served
after it, whatever it names. An entry older than the freshness bound is never
served either, and a snapshot built from one counts its age against the bound of
the in-process cache (`KeySnapshot.age_s`), so a change that reaches no replica
is still enforced everywhere within `cache_ttl_s` of it.

Redis is only a shortcut here: when it fails or is slow, the database is read, as
without Redis. Entries hold what the database holds (the keyed hash, never a raw key),
and each carries an HMAC of its key hash and content under a key derived from the
plugin's `hash_secret`: whoever can write to Redis but does not hold the secret cannot
make a replica trust a row (a changed, made-up or moved entry is ignored and the
database read instead).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from authcore.lean_redis import ScriptConnection, pack
from authcore_virtual_keys.records import KeySnapshot, snapshot_from_row

logger = logging.getLogger("authcore.virtual_keys")

READ_SCRIPT = "return {redis.call('GET', KEYS[1]), redis.call('GET', KEYS[2]), redis.call('PTTL', KEYS[2])}"
"""The generation, the entry, and the entry's remaining milliseconds (its age, by the server's clock)."""
DEFAULT_TIMEOUT_S = 0.05
"""Longer than a loopback round trip by far; past it the database answers instead."""


class SharedRows:
    """Read, write and invalidate the shared key rows of one plugin instance."""

    def __init__(
        self, redis: Redis, base: str, *, ttl_s: float, signing_key: bytes, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        self._redis = redis
        self._signing_key = signing_key
        self._rows = f"{base}row:"
        self.generation_key = f"{base}generation"
        self._ttl_s = ttl_s
        self._timeout_s = timeout_s
        self._writing: set[asyncio.Task[None]] = set()
        self._failing = False
        pool = redis.connection_pool
        # redis-py costs about as much as the database read this saves; the lean connection a third of that.
        supported = ScriptConnection.supports(pool.connection_class, pool.connection_kwargs)
        self._lean = ScriptConnection(pool.connection_kwargs) if supported else None
        self._read_sha: str | None = None

    async def get(self, token: str, max_age_s: float) -> tuple[KeySnapshot | None, int | None]:
        """The snapshot Redis holds for `token` (`None`: none, stale, older than `max_age_s` or unreadable), and
        the current generation to `put` a row read from the database under (`None`: Redis failed, write nothing)."""
        try:
            generation, entry, remaining_ms = await self._read(self._rows + token)
        except Exception as error:  # noqa: BLE001 - Redis is a shortcut: the database answers instead
            self._failed(error)
            return None, None
        self._recovered()
        current = int(generation or 0)
        if entry is None or remaining_ms is None or remaining_ms <= 0:
            return None, current
        age = max(0.0, self._ttl_s - remaining_ms / 1000)
        if age > max_age_s:
            return None, current
        try:
            signature, _, content = bytes(entry).partition(b":")
            if not hmac.compare_digest(signature, self._sign(token, content)):
                logger.warning("virtual keys: shared key entry with a wrong signature ignored")
                return None, current
            stored = json.loads(content)
            if int(stored["g"]) != current:
                return None, current
            row: dict[str, Any] = stored["row"]
            for name in stored["dates"]:
                row[name] = datetime.fromisoformat(row[name])
            return dataclasses.replace(snapshot_from_row(row), age_s=age), current
        except Exception as error:  # noqa: BLE001 - an entry this version cannot read is a miss
            logger.warning("virtual keys: unreadable shared key entry ignored: %s", type(error).__name__)
            return None, current

    async def _read(self, key: str, *, again: bool = True) -> list[Any]:
        """[generation, entry, entry's remaining ms] in one round trip, the entry's age by the server's clock."""
        if self._lean is None:
            async with asyncio.timeout(self._timeout_s):
                reply: list[Any] = await self._redis.eval(READ_SCRIPT, 2, self.generation_key, key)
            return reply
        if self._read_sha is None:
            async with asyncio.timeout(self._timeout_s * 10):
                self._read_sha = str(await self._redis.script_load(READ_SCRIPT))
        command = pack("EVALSHA", self._read_sha, 2, self.generation_key, key)
        try:
            found: list[Any] = await self._lean.call(command, self._timeout_s)
        except NoScriptError:
            if not again:
                raise
            self._read_sha = None  # the server restarted or SCRIPT FLUSH ran: load it again, once
            return await self._read(key, again=False)
        return found

    def put(self, token: str, row: Mapping[str, Any], generation: int, read_at: float) -> None:
        """Store `row` (read from the database at `time.monotonic()` `read_at`, under `generation`) in the
        background, expiring `ttl_s` after that read."""
        task = asyncio.get_running_loop().create_task(self._write(token, row, generation, read_at))
        self._writing.add(task)
        task.add_done_callback(self._writing.discard)

    async def _write(self, token: str, row: Mapping[str, Any], generation: int, read_at: float) -> None:
        try:
            left_ms = int((self._ttl_s - (time.monotonic() - read_at)) * 1000)
            if left_ms <= 0:
                return
            dates = [name for name, value in row.items() if isinstance(value, datetime)]
            plain = {name: value.isoformat() if name in dates else value for name, value in row.items()}
            content = json.dumps({"g": generation, "dates": dates, "row": plain}, separators=(",", ":")).encode()
            entry = self._sign(token, content) + b":" + content
            if self._lean is not None:
                await self._lean.call(pack("SET", self._rows + token, entry, "PX", left_ms), self._timeout_s)
            else:
                async with asyncio.timeout(self._timeout_s):
                    await self._redis.set(self._rows + token, entry, px=left_ms)
        except Exception as error:  # noqa: BLE001 - the next miss reads the database again
            self._failed(error)

    def _sign(self, token: str, content: bytes) -> bytes:
        """Hex HMAC-SHA-256 of the key hash and the entry: an entry moved to another key's name fails too."""
        return hmac.new(self._signing_key, token.encode() + b"\n" + content, hashlib.sha256).hexdigest().encode()

    async def bump(self) -> None:
        """Make every entry written so far stale (after a change, before it is published)."""
        await self._redis.incr(self.generation_key)

    async def aclose(self) -> None:
        if self._writing:
            await asyncio.wait(set(self._writing), timeout=1.0)
        if self._lean is not None:
            await self._lean.aclose()

    def _failed(self, error: BaseException) -> None:
        if not self._failing:
            self._failing = True
            logger.warning(
                "virtual keys: shared key cache unavailable (%s); reading the database", type(error).__name__
            )

    def _recovered(self) -> None:
        if self._failing:
            self._failing = False
            logger.info("virtual keys: shared key cache available again")

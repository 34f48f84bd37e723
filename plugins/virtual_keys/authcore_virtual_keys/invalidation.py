"""Cross-replica cache invalidation over Redis pub/sub.

Each admin change is published on one channel as a short text message naming
what changed: `key:<hash>`, `team:<id>`, `user:<id>`, `org:<id>`, `project:<id>`,
`end_user:<id>` or `all`. Never a raw key. A replica that does not know a kind
reads it as `all`, so a mixed-version rollout only drops more.
Every replica subscribes and drops the matching entries of its own cache.
A message can be lost (Redis down, connection dropped): the subscriber then
clears the whole cache whenever it (re)subscribes, and the cache's freshness
bound (`cache_ttl_s`) still limits how long a stale entry is served.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

logger = logging.getLogger("authcore.virtual_keys")

ChangeKind = Literal["key", "team", "user", "org", "project", "end_user", "all"]
_KINDS: Final[frozenset[str]] = frozenset({"key", "team", "user", "org", "project", "end_user"})

POLL_S: Final = 1.0
"""How long one read on the subscription waits before the loop checks its health."""
PING_INTERVAL_S: Final = 5.0
"""A silent subscription is pinged this often; one that stays silent twice as long is treated as dead."""
BACKOFF_FIRST_S: Final = 0.05
BACKOFF_MAX_S: Final = 2.0
PUBLISH_DRAIN_S: Final = 1.0
"""At shutdown, how long publications still in flight may take."""


@dataclass(frozen=True, slots=True)
class Change:
    """What an admin change affects: one key (by hash); a team's, user's, organization's or project's keys;
    one end user; or everything."""

    kind: ChangeKind
    value: str = ""

    def encode(self) -> str:
        return "all" if self.kind == "all" else f"{self.kind}:{self.value}"

    @classmethod
    def decode(cls, data: bytes | str) -> Change:
        """Parse a message; anything unreadable means `all`, so a bad message can only drop more."""
        try:
            text = data.decode() if isinstance(data, bytes) else data
        except UnicodeDecodeError:
            return ALL
        kind, _, value = text.partition(":")
        if kind in _KINDS and value:
            return cls(kind, value)  # type: ignore[arg-type]  # checked against _KINDS
        return ALL


ALL: Final = Change("all")


class Invalidatable(Protocol):
    """The local cache, as the subscriber sees it."""

    def apply(self, change: Change) -> None: ...

    def clear(self) -> None: ...


def channel_name(prefix: str, instance: str) -> str:
    """The channel shared by the replicas of one plugin instance."""
    return f"{prefix}vk:{instance}:invalidate"


class InvalidationBus:
    """Publishes this replica's changes and applies every replica's changes to the local cache.

    `publish` is synchronous (the cache calls it) and sends in a background task;
    a failed send is logged and left to the freshness bound. The subscriber runs
    until `stop`, reconnecting with exponential backoff.
    """

    def __init__(
        self, redis: Redis, channel: str, cache: Invalidatable, *, before: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        self._redis = redis
        self._channel = channel
        self._cache = cache
        self._before = before
        """Run before each publication (the shared rows' `bump`), so replicas that act on it read the change."""
        self._sending: set[asyncio.Task[None]] = set()
        self._subscriber: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._tried = asyncio.Event()
        self.resubscriptions = 0
        """How many times the subscription was (re)established; each one cleared the cache."""

    @property
    def subscribed(self) -> bool:
        return self._subscribed.is_set()

    async def start(self, wait_s: float = 2.0) -> None:
        """Start the subscriber; wait up to `wait_s` for the first attempt to subscribe.

        A failure is not fatal: the subscriber keeps retrying, and meanwhile
        the freshness bound limits what other replicas' changes can miss.
        """
        self._subscriber = asyncio.create_task(self._run(), name=f"vk-invalidation:{self._channel}")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                await self._tried.wait()
        if not self.subscribed:
            logger.warning("virtual keys: not subscribed to invalidations yet; retrying in the background")

    async def stop(self) -> None:
        """Stop the subscriber; give publications in flight a moment to finish."""
        if self._subscriber is not None:
            self._subscriber.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._subscriber
            self._subscriber = None
        self._subscribed.clear()
        if self._sending:
            _, late = await asyncio.wait(set(self._sending), timeout=PUBLISH_DRAIN_S)
            for task in late:
                task.cancel()

    # -- publishing ---------------------------------------------------------

    def publish(self, change: Change) -> None:
        """Tell every replica (this one included) to drop what `change` names."""
        task = asyncio.get_running_loop().create_task(self._send(change.encode()))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    @property
    def sending(self) -> bool:
        """Whether a change made here is still on its way to the replicas."""
        return bool(self._sending)

    async def _send(self, message: str) -> None:
        if self._before is not None:
            try:
                await self._before()
            except Exception as error:  # noqa: BLE001 - the shared rows then fall back to their freshness bound
                logger.warning("virtual keys: shared key rows not invalidated: %s", type(error).__name__)
        try:
            await self._redis.publish(self._channel, message)
        except Exception as error:  # noqa: BLE001 - other replicas fall back to the freshness bound
            logger.warning("virtual keys: invalidation not published: %s", type(error).__name__)

    # -- subscribing --------------------------------------------------------

    async def _run(self) -> None:
        backoff = BACKOFF_FIRST_S
        while True:
            before = self.resubscriptions
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - reconnect whatever went wrong
                logger.warning("virtual keys: invalidation subscription lost (%s); reconnecting", type(error).__name__)
            self._tried.set()
            if self._subscribed.is_set():
                # Messages sent from now on are lost: drop what may go stale unseen. Not again on every failed
                # attempt of an outage: `cache_ttl_s` bounds staleness meanwhile, and clearing every retry would
                # send every replica's every key to the database each time (the subscription clears on return).
                self._subscribed.clear()
                self._cache.clear()
            if self.resubscriptions != before:
                backoff = BACKOFF_FIRST_S
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def _listen(self) -> None:
        pubsub: PubSub = self._redis.pubsub()
        try:
            await pubsub.subscribe(self._channel)
            last_heard = time.monotonic()
            last_ping = last_heard
            while True:
                message = await pubsub.get_message(timeout=POLL_S)
                now = time.monotonic()
                if message is not None:
                    last_heard = now
                    self._handle(message)
                    continue
                if now - last_heard > 2 * PING_INTERVAL_S:
                    # A half-open connection delivers nothing and raises nothing.
                    raise ConnectionError("no answer to ping on the invalidation subscription")
                if now - last_ping >= PING_INTERVAL_S:
                    last_ping = now
                    await pubsub.ping()
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "subscribe":
            # First subscription or a reconnect inside the client: anything published before now may be missed.
            self._cache.clear()
            self.resubscriptions += 1
            self._subscribed.set()
            self._tried.set()
        elif kind == "message":
            self._cache.apply(Change.decode(message.get("data", b"")))

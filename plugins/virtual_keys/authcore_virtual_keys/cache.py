"""In-process cache of key snapshots: bounded freshness, one database read per key at a time."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable

from authcore.bounded import put_newest
from authcore_virtual_keys.end_users import EndUserCache
from authcore_virtual_keys.invalidation import ALL, Change
from authcore_virtual_keys.records import KeySnapshot
from authcore_virtual_keys.single_flight import SingleFlight

logger = logging.getLogger("authcore.virtual_keys")

Loader = Callable[[str, float], Awaitable[KeySnapshot | None]]
"""Reads the key with this hash. The second argument is how old (seconds) a copy shared by another replica may
be to serve instead: 0 when a request waits for the read, so it goes to the database alone."""
Publisher = Callable[[Change], None]

DEFAULT_MAX_ENTRIES = 100_000
REFRESH_FROM = 0.5
REFRESH_TO = 0.8
"""A snapshot used between these fractions of `ttl` after its read (a random point per snapshot) is read
again in the background, while it keeps being served."""


class SnapshotCache:
    """Key hash -> immutable snapshot, read through `load`.

    A snapshot is served for at most `ttl` seconds after it was read. One used
    after a random point between `REFRESH_FROM` and `REFRESH_TO` of that is read
    again in the background while it is still served, so a key in steady use
    never makes a request wait for a read. Only these background reads may take
    a row another replica shared (one younger than `REFRESH_FROM` of `ttl`): the
    replica that refreshes a key first reads the database and shares the row,
    the others take it. Concurrent misses for one hash share a single `load`
    (single flight); the read runs in its own task, so a cancelled request does
    not cancel it for the others.
    Unknown hashes are remembered for `negative_ttl` seconds, at most
    `negative_size` of them. Invalidation also discards reads already in flight,
    so a read that started before a change is never stored after it.

    The `invalidate*` methods are for changes made here: they also hand the
    change to the publisher (other replicas), when one is set. `apply` and
    `clear` act on this process only. The end user cache (`end_users`), when
    given, is invalidated and cleared along with the keys.
    """

    def __init__(
        self,
        load: Loader,
        *,
        ttl: float,
        negative_ttl: float,
        negative_size: int,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
        end_users: EndUserCache | None = None,
    ) -> None:
        self._load = load
        self._end_users = end_users
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._negative_size = negative_size
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[KeySnapshot, float, float]] = {}
        """hash -> (snapshot, when to refresh it, when it expires), on `clock`."""
        self._negative: dict[str, float] = {}
        self._inflight: SingleFlight[KeySnapshot | None] = SingleFlight()
        self._publish: Publisher | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def holds(self, token: str) -> bool:
        """Whether a fresh snapshot of `token` is stored, so the next `get` reads nothing."""
        entry = self._entries.get(token)
        return entry is not None and self._clock() < entry[2]

    def fresh(self, token: str) -> KeySnapshot | None:
        """The stored snapshot of `token` while fresh, else `None` (then `get` decides); never waits.

        A synchronous hit saves the request path a coroutine per call.
        """
        entry = self._entries.get(token)
        if entry is not None:
            now = self._clock()
            if now < entry[1]:
                return entry[0]
            if now < entry[2]:
                self._refresh(token, entry)
                return entry[0]
        return None

    async def get(self, token: str) -> KeySnapshot | None:
        """The snapshot for `token`, `None` when no such key exists. Load errors propagate."""
        snapshot = self.fresh(token)
        if snapshot is not None:
            return snapshot
        unknown_until = self._negative.get(token)
        if unknown_until is not None:
            if self._clock() < unknown_until:
                return None
            del self._negative[token]
        return await self._inflight.run(token, lambda: self._fill(token, 0.0))

    def _refresh(self, token: str, entry: tuple[KeySnapshot, float, float]) -> None:
        """Read `token` again in the background; until then (or if that fails) `entry` serves until it expires."""
        # One refresh per snapshot: while it runs, and after it failed, requests are served without starting more.
        self._entries[token] = (entry[0], entry[2], entry[2])
        # A shared row only as young as this one would be refreshed again at once: read the database instead.
        self._inflight.start(token, lambda: self._fill(token, self._ttl * REFRESH_FROM))

    async def _fill(self, token: str, max_age_s: float) -> KeySnapshot | None:
        snapshot = await self._load(token, max_age_s)
        if not self._inflight.is_current(token):
            # A change to this key (or to many) was made while this read ran: hand it to its waiters, keep nothing.
            return snapshot
        if snapshot is None:
            self._entries.pop(token, None)  # deleted (a refresh can learn it before any invalidation arrives)
            self._remember_unknown(token)
        else:
            # Fresh for what is left of `ttl` since the database read (older when it came from the shared cache).
            read_at = self._clock() - snapshot.age_s
            refresh_at = read_at + self._ttl * random.uniform(REFRESH_FROM, REFRESH_TO)  # noqa: S311 - spreading
            entry = (snapshot, refresh_at, read_at + self._ttl)
            put_newest(self._entries, token, entry, self._max_entries)
        return snapshot

    def _remember_unknown(self, token: str) -> None:
        if self._negative_size <= 0 or self._negative_ttl <= 0:
            return
        put_newest(self._negative, token, self._clock() + self._negative_ttl, self._negative_size)

    def set_publisher(self, publish: Publisher | None) -> None:
        """Send every `invalidate*` to the other replicas through `publish`; `None`: this process only."""
        self._publish = publish

    def invalidate(self, token: str) -> None:
        """Forget one key (changed, deleted or just created), here and on every replica."""
        self._drop(token)
        self._announce(Change("key", token))

    def invalidate_team(self, team_id: str) -> None:
        """Forget every key of a changed or deleted team, here and on every replica."""
        self._drop_where(lambda snapshot: snapshot.team_id == team_id)
        self._announce(Change("team", team_id))

    def invalidate_user(self, user_id: str) -> None:
        """Forget every key of a changed user, here and on every replica."""
        self._drop_where(lambda snapshot: snapshot.user_id == user_id)
        self._announce(Change("user", user_id))

    def invalidate_org(self, org_id: str) -> None:
        """Forget every key of a changed organization (its own, or its team's), here and on every replica."""
        self._drop_where(lambda snapshot: snapshot.org_id == org_id)
        self._announce(Change("org", org_id))

    def invalidate_project(self, project_id: str) -> None:
        """Forget every key of a changed project, here and on every replica."""
        self._drop_where(lambda snapshot: snapshot.project_id == project_id)
        self._announce(Change("project", project_id))

    def invalidate_end_user(self, user_id: str) -> None:
        """Forget a changed end user (customer), here and on every replica."""
        if self._end_users is not None:
            self._end_users.drop(user_id)
        self._announce(Change("end_user", user_id))

    def invalidate_where(self, predicate: Callable[[KeySnapshot], bool]) -> None:
        """Forget every cached key matching `predicate` and every read in flight.

        Other replicas cannot run `predicate`: they drop everything. Prefer
        the targeted `invalidate_*` methods.
        """
        self._drop_where(predicate)
        self._announce(ALL)

    def apply(self, change: Change) -> None:
        """Act on a change announced by any replica (this one included), in this process only."""
        kind, value = change.kind, change.value
        if kind == "key":
            self._drop(value)
        elif kind == "team":
            self._drop_where(lambda snapshot: snapshot.team_id == value)
        elif kind == "user":
            self._drop_where(lambda snapshot: snapshot.user_id == value)
        elif kind == "org":
            self._drop_where(lambda snapshot: snapshot.org_id == value)
        elif kind == "project":
            self._drop_where(lambda snapshot: snapshot.project_id == value)
        elif kind == "end_user":
            if self._end_users is not None:
                self._end_users.drop(value)
        else:
            self.clear()

    def clear(self) -> None:
        """Forget everything (end users too), in this process only."""
        self._entries.clear()
        self._negative.clear()
        self._inflight.clear()
        if self._end_users is not None:
            self._end_users.clear()

    def _drop(self, token: str) -> None:
        self._entries.pop(token, None)
        self._negative.pop(token, None)
        self._inflight.forget(token)

    def _drop_where(self, predicate: Callable[[KeySnapshot], bool]) -> None:
        for token in [token for token, (snapshot, _, _) in self._entries.items() if predicate(snapshot)]:
            del self._entries[token]
        self._inflight.clear()

    def _announce(self, change: Change) -> None:
        if self._publish is None:
            return
        try:
            self._publish(change)
        except Exception as error:  # noqa: BLE001 - the change is made; other replicas fall back to the freshness bound
            logger.warning("virtual keys: invalidation not published: %s", type(error).__name__)

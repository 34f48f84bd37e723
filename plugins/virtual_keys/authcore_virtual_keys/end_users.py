"""End users (customers) as the request path sees them, and their in-process cache."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from authcore.bounded import put_newest
from authcore_virtual_keys.single_flight import SingleFlight

DEFAULT_MODEL_FIELD: Final = "end_user_default_model"
"""`Identity.metadata` entry: the model the gateway uses when a request of this end user names none."""
REGION_FIELD: Final = "end_user_allowed_model_region"
"""`Identity.metadata` entry: the region (`eu`, `us`) the gateway must route this end user's requests to.

authcore does not know where deployments run: routing by region is the gateway's job.
"""

DEFAULT_MAX_ENTRIES: Final = 100_000
_NOTHING: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class EndUserRecord:
    """One end user row, reduced to what requests need."""

    user_id: str
    blocked: bool
    identity_metadata: Mapping[str, Any] = field(default_factory=lambda: _NOTHING)
    """What the gateway needs to apply (default model, region); empty when the row sets neither."""
    limits: Mapping[str, Any] = field(default_factory=lambda: _NOTHING)
    """Handed over in `Identity.limits["end_user"]` (`end_user_limits`), for the budgets plugin to enforce."""


def end_user_limits(row: Mapping[str, Any]) -> Mapping[str, Any]:
    """An end user row's `max_budget` and `budget_id` (a named budget of the budgets plugin), those set."""
    found = {name: row[name] for name in ("max_budget", "budget_id") if row.get(name) is not None}
    return MappingProxyType(found) if found else _NOTHING


def end_user_from_row(row: Mapping[str, Any]) -> EndUserRecord:
    extra = {
        name: row[column]
        for name, column in ((DEFAULT_MODEL_FIELD, "default_model"), (REGION_FIELD, "allowed_model_region"))
        if row.get(column) is not None
    }
    return EndUserRecord(
        user_id=row["user_id"],
        blocked=bool(row.get("blocked")),
        identity_metadata=MappingProxyType(extra) if extra else _NOTHING,
        limits=end_user_limits(row),
    )


Loader = Callable[[str], Awaitable[EndUserRecord | None]]


class Miss:
    """`EndUserCache.fresh` found nothing fresh (distinct from a fresh "no such end user")."""


MISS: Final = Miss()


class EndUserCache:
    """End user id -> record (or `None`: no such end user), each trusted for `ttl` seconds.

    The same freshness bound as keys (`cache_ttl_s`), and the same invalidation:
    changes made through the admin API drop the entry here and on every replica
    (`SnapshotCache.invalidate_end_user`). Unknown ids are kept too, since with
    `validate_end_users` off most named end users have no row; clients choose
    the ids, so at most `max_entries` are kept, the oldest dropped first.
    Concurrent misses for one id share one read (single flight).
    """

    def __init__(
        self,
        load: Loader,
        *,
        ttl: float,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[EndUserRecord | None, float]] = {}
        self._generation = 0
        self._loading: SingleFlight[EndUserRecord | None] = SingleFlight()

    def __len__(self) -> int:
        return len(self._entries)

    def fresh(self, user_id: str) -> EndUserRecord | Miss | None:
        """The kept answer for `user_id` while fresh, else `MISS`; never reads."""
        entry = self._entries.get(user_id)
        if entry is not None and self._clock() - entry[1] < self._ttl:
            return entry[0]
        return MISS

    async def get(self, user_id: str) -> EndUserRecord | None:
        """The end user, `None` when there is no such row. Load errors propagate."""
        found = self.fresh(user_id)
        if not isinstance(found, Miss):
            return found
        generation = self._generation
        return await self._loading.run(user_id, lambda: self._fill(user_id, generation))

    async def _fill(self, user_id: str, generation: int) -> EndUserRecord | None:
        record = await self._load(user_id)
        if generation == self._generation and self._ttl > 0:
            # Else something changed while this read ran: answer this request, keep nothing.
            put_newest(self._entries, user_id, (record, self._clock()), self._max_entries)
        return record

    def drop(self, user_id: str) -> None:
        self._generation += 1
        self._entries.pop(user_id, None)
        self._loading.forget(user_id)

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()
        self._loading.clear()

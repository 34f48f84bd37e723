"""Counters in this process: exact, because each operation runs without an `await` inside it."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from authcore_budgets.clock import wall_ms
from authcore_budgets.entities import NO_LIMIT, Counter
from authcore_budgets.ratelimits import WINDOW_US, RateLimit
from authcore_budgets.store import ADMITTED, CounterState, ReserveOutcome

SWEEP_EVERY = 1000
"""Operations between sweeps of expired counters and settlement markers."""


def _ms_up(us: float) -> int:
    return max(1, math.ceil(us / 1000))


@dataclass(slots=True)
class _Entry:
    loaded: bool = False
    spent: int = 0
    reserved: int = 0
    holds: dict[str, tuple[int, int]] = field(default_factory=dict)
    """request id -> (amount, expires at ms), oldest first: with one hold TTL, insertion order is expiry order."""
    late: dict[str, int] = field(default_factory=dict)
    expire_at_ms: int = 0

    def drop_expired_holds(self, now: int) -> None:
        # A settled hold leaves nothing behind (a heap of expiries kept every settled request
        # for the hold TTL: millions of tuples the garbage collector walked under load).
        holds = self.holds
        while holds:
            request_id = next(iter(holds))
            amount, expires = holds[request_id]
            if expires > now:
                # A hold with a shorter TTL queued behind this one waits for it: held longer, never less.
                return
            del holds[request_id]
            self.reserved -= amount


def _drop_expired(expiries: dict[str, int], now: int) -> None:
    """Drop the entries whose expiry (ms) has passed, from the front: they were inserted in expiry order."""
    while expiries:
        key = next(iter(expiries))
        if expiries[key] > now:
            return
        del expiries[key]


class MemoryStore:
    """The embedded default's store. Only correct when one process owns the counters (see `worker_lock`)."""

    kind = "memory"
    cancel_safe = True  # it never suspends

    def __init__(self, *, done_ttl_ms: int, clock: Callable[[], int] = wall_ms) -> None:
        self._entries: dict[str, _Entry] = {}
        self._done: dict[str, int] = {}
        self._done_ttl = done_ttl_ms
        self._clock = clock
        self._operations = 0
        self._tats: dict[str, float] = {}
        self._slots: dict[str, dict[str, int]] = {}
        # A new process has lost whatever rate state the one before it had: for one window, an rpm or tpm
        # limit it does not know is loaded from the ledger (`init_rate`) before it admits anything.
        self._rebuild_until = clock() + WINDOW_US // 1000

    def _entry(self, counter: Counter, now: int) -> _Entry:
        entry = self._entries.get(counter.name)
        if entry is None or (entry.expire_at_ms and entry.expire_at_ms <= now):
            entry = self._entries[counter.name] = _Entry(expire_at_ms=counter.expire_at_ms)
        return entry

    def _sweep(self, now: int) -> None:
        for name, entry in list(self._entries.items()):
            if entry.expire_at_ms and entry.expire_at_ms <= now:
                del self._entries[name]
        # Markers are inserted in expiry order (one TTL), so the expired ones are at the front.
        _drop_expired(self._done, now)

    def reserve(
        self,
        request_id: str,
        counters: Sequence[Counter],
        amount: int,
        hold_ms: int,
        rates: Sequence[RateLimit] = (),
    ) -> ReserveOutcome:
        """As `CounterStore.reserve`, answered at once: nothing here waits."""
        now = self._clock()
        self._operations += 1
        if not self._operations % SWEEP_EVERY:
            self._sweep(now)
        if rates:
            left: list[int] = []
            tats: dict[str, float] = {}
            refused = self._check_rates(rates, now, left, tats)
            if refused is not None:
                return refused
        known = self._entries
        entries: list[_Entry] = []
        missing = False
        for counter in counters:
            entry = known.get(counter.name)
            if entry is None or (entry.expire_at_ms and entry.expire_at_ms <= now):
                entry = self._entry(counter, now)
            if not entry.loaded:
                missing = True
            elif entry.holds:
                entry.drop_expired_holds(now)
            ceiling = counter.limit
            if ceiling != NO_LIMIT and entry.spent + entry.reserved + amount > ceiling and not missing:
                return ReserveOutcome(False, denied_index=len(entries))
            entries.append(entry)
        if missing:
            return ReserveOutcome(False, missing=tuple(i for i, e in enumerate(entries) if not e.loaded))
        hold = (amount, now + hold_ms)
        for entry in entries:
            entry.holds[request_id] = hold
            entry.reserved += amount
        if not rates:
            return ADMITTED
        for limit in rates:
            if limit.kind == "parallel":
                self._slots.setdefault(limit.name, {})[request_id] = hold[1]
            elif limit.kind == "rpm":
                self._tats[limit.name] = tats[limit.name]
        return ReserveOutcome(True, left=tuple(left))

    def _check_rates(
        self, rates: Sequence[RateLimit], now_ms: int, left: list[int], tats: dict[str, float]
    ) -> ReserveOutcome | None:
        """The refusal of the first exhausted limit, the limits to load first, or `None` after filling `left`
        and the new rpm `tats`."""
        now = now_ms * 1000.0
        missing: list[int] = []
        for index, limit in enumerate(rates):
            if limit.limit <= 0:
                return ReserveOutcome(False, rate_index=index, retry_after_ms=60_000)
            if limit.kind == "parallel":
                slots = self._slots.setdefault(limit.name, {})
                # Oldest first, as holds: only the expired front is looked at, not every slot.
                _drop_expired(slots, now_ms)
                if len(slots) >= limit.limit:
                    return ReserveOutcome(
                        False, rate_index=index, retry_after_ms=max(1, min(slots.values()) - now_ms + 1)
                    )
                left += (limit.limit - len(slots) - 1, 0)
                continue
            step = limit.interval_us
            known = self._tats.get(limit.name)
            if known is None and now_ms < self._rebuild_until:
                missing.append(index)
                continue
            tat = max(known or 0.0, now)
            if limit.kind == "rpm":
                tat += step
                if tat - now > WINDOW_US:
                    return ReserveOutcome(False, rate_index=index, retry_after_ms=_ms_up(tat - now - WINDOW_US))
                tats[limit.name] = tat
            elif tat - now >= WINDOW_US:
                return ReserveOutcome(False, rate_index=index, retry_after_ms=_ms_up(tat - now - WINDOW_US))
            left += (math.floor((WINDOW_US - (tat - now)) / step), math.ceil((tat - now) / 1000))
        return ReserveOutcome(False, missing_rates=tuple(missing)) if missing else None

    async def settle(
        self,
        request_id: str,
        counters: Sequence[Counter],
        actual: int | None,
        rates: Sequence[RateLimit] = (),
        tokens: int = 0,
    ) -> list[int] | None:
        now = self._clock()
        if counters:
            # As in Redis: only budgeted settlements are remembered.
            if self._done.get(request_id, 0) > now:
                return None
            self._done[request_id] = now + self._done_ttl
        spends: list[int] = []
        for counter in counters:
            entry = self._entry(counter, now)
            held = entry.holds.pop(request_id, None)
            if held is not None:
                entry.reserved -= held[0]
            if actual is None:
                spends.append(0)
            elif entry.loaded:
                entry.spent += actual
                spends.append(entry.spent)
            else:
                entry.late[request_id] = actual
                spends.append(-1)
        for limit in rates:
            if limit.kind == "parallel":
                self._slots.get(limit.name, {}).pop(request_id, None)
            elif limit.kind == "tpm" and tokens > 0:
                known = self._tats.get(limit.name)
                if known is None and now < self._rebuild_until:
                    continue  # left for `init_rate`, which counts these tokens from the ledger
                tat = max(known or 0.0, now * 1000.0)
                self._tats[limit.name] = tat + tokens * limit.interval_us
        return spends

    async def late_charges(self, counter: Counter) -> dict[str, int] | None:
        entry = self._entry(counter, self._clock())
        return None if entry.loaded else dict(entry.late)

    async def initialise(self, counter: Counter, spent: int, seen_late: Collection[str]) -> bool:
        entry = self._entry(counter, self._clock())
        if entry.loaded:
            return True
        if set(entry.late) != set(seen_late):
            return False
        entry.spent = spent
        entry.late.clear()
        entry.loaded = True
        return True

    async def init_rate(self, limit: RateLimit, used: int) -> None:
        if limit.name not in self._tats:
            self._tats[limit.name] = self._clock() * 1000.0 + used * limit.interval_us

    async def read(self, counter: Counter) -> CounterState | None:
        entry = self._entries.get(counter.name)
        if entry is None or not entry.loaded:
            return None
        entry.drop_expired_holds(self._clock())
        return CounterState(entry.spent, entry.reserved)

    async def aclose(self) -> None:
        self._entries.clear()

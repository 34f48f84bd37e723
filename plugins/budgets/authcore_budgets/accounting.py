"""Reserve, commit and release: the counters (fast, atomic) and the ledger (durable) kept in step."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from authcore import Reservation, Usage
from authcore_budgets.clock import wall_ms
from authcore_budgets.entities import Counter, LedgerFilter, entity_columns
from authcore_budgets.ledger import Charge, Ledger
from authcore_budgets.pricing import Pricer
from authcore_budgets.ratelimits import WINDOW_US, RateLimit
from authcore_budgets.settlement_retries import Settlement, SettlementRetries
from authcore_budgets.store import CounterStore, ReserveOutcome

logger = logging.getLogger("authcore.budgets")

LOAD_ATTEMPTS = 8
"""Reservations tried, loading the missing counters between two, before the request is refused (loads only
race settlements)."""


_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


class CountersNotLoaded(Exception):
    """Counters kept changing while they were loaded from the ledger."""


SoftLimitHook = Callable[[Counter, int], Awaitable[None]]
"""Called with a counter and its new spend when a settlement takes it past its soft budget."""


class Accountant:
    """Owns the hot path's state changes; never decides HTTP responses."""

    def __init__(
        self,
        store: CounterStore,
        ledger: Ledger,
        pricer: Pricer,
        *,
        hold_ms: int,
        on_soft: SoftLimitHook,
        clock: Callable[[], int] = wall_ms,
    ) -> None:
        self.store = store
        self.ledger = ledger
        self.pricer = pricer
        self.hold_ms = hold_ms
        self._on_soft = on_soft
        self._clock = clock
        """Epoch ms, the clock `reserved_at_ms` of ledger rows is taken from."""
        self._loading: dict[str, asyncio.Future[None]] = {}
        self.retries = SettlementRetries(store, self._retried)
        """Settlements the store failed to take, sent again until it does."""

    async def aclose(self) -> None:
        """At shutdown: the settlements still waiting for the store, then the ledger's queue."""
        await self.retries.aclose()
        await self.ledger.aclose()

    def reserve(
        self, request_id: str, counters: Sequence[Counter], amount: int, rates: Sequence[RateLimit] = ()
    ) -> ReserveOutcome | Coroutine[Any, Any, ReserveOutcome]:
        """Take every rate limit and hold `amount` on every counter, or none, loading counters not in the store.

        The outcome at once when the store gives it at once and no counter had to be loaded; else a coroutine.
        """
        if counters:
            self.ledger.check_backlog()
        outcome = self.store.reserve(request_id, counters, amount, self.hold_ms, rates)
        if isinstance(outcome, ReserveOutcome) and not outcome.missing and not outcome.missing_rates:
            return outcome
        return self._reserve_loading(request_id, counters, amount, rates, outcome)

    async def _reserve_loading(
        self,
        request_id: str,
        counters: Sequence[Counter],
        amount: int,
        rates: Sequence[RateLimit],
        first: ReserveOutcome | Awaitable[ReserveOutcome],
    ) -> ReserveOutcome:
        outcome = first if isinstance(first, ReserveOutcome) else await first
        attempts = 1
        while outcome.missing or outcome.missing_rates:
            if attempts == LOAD_ATTEMPTS:
                raise CountersNotLoaded
            # Rate limits first: the store reports counters only once every rate limit is known.
            for index in outcome.missing_rates:
                await self.load_rate(rates[index])
            for index in outcome.missing:
                await self.load(counters[index])
            again = self.store.reserve(request_id, counters, amount, self.hold_ms, rates)
            outcome = again if isinstance(again, ReserveOutcome) else await again
            attempts += 1
        return outcome

    async def load(self, counter: Counter) -> None:
        """Set a missing counter to its ledger total (after a restart, data loss or a new period).

        Concurrent requests missing the same counter wait for one load instead of
        each reading the ledger (a cold counter under load would otherwise cost a
        ledger sum and two Redis calls per waiting request).
        """
        await self._once(f"counter:{counter.name}", lambda: self._load(counter))

    async def load_rate(self, limit: RateLimit) -> None:
        """Start a lost rpm/tpm state from the requests or tokens the ledger recorded in the last window.

        Requests still in flight are not in the ledger yet: up to that many more may be admitted in the
        window after a loss (parallel slots, which only in-flight requests hold, are not rebuilt at all).
        """
        await self._once(f"rate:{limit.name}", lambda: self._load_rate(limit))

    async def _load_rate(self, limit: RateLimit) -> None:
        window = LedgerFilter(
            entity_columns(limit.entity, limit.entity_id), limit.model, self._clock() - WINDOW_US // 1000, None
        )
        requests, tokens = await self.ledger.recent_use(window)
        await self.store.init_rate(limit, requests if limit.kind == "rpm" else tokens)

    async def _once(self, name: str, load: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run `load`, or wait for the run already going under `name`."""
        pending = self._loading.get(name)
        if pending is None:
            pending = self._loading[name] = asyncio.ensure_future(load())
            pending.add_done_callback(self._loaded)
        # Shielded: one waiter giving up (its request timed out) must not cancel the others' load.
        await asyncio.shield(pending)

    def _loaded(self, done: asyncio.Future[None]) -> None:
        for name, pending in list(self._loading.items()):
            if pending is done:
                del self._loading[name]

    async def _load(self, counter: Counter) -> None:
        for _ in range(LOAD_ATTEMPTS):
            late = await self.store.late_charges(counter)
            if late is None:
                return
            # Late charges are already in the ledger: sum the rest and add them once.
            total = await self.ledger.total(counter.ledger, exclude=late.keys()) + sum(late.values())
            if await self.store.initialise(counter, total, list(late)):
                return
        raise CountersNotLoaded

    async def commit(self, held: BudgetReservation, usage: Usage | None) -> None:
        """Charge the counters and the tpm limits, and free parallel slots, in one store call; record the request.

        Every request an rpm or tpm limit applied to leaves a ledger row (0 USD when nothing is charged),
        with its tokens: what those limits are rebuilt from after the store loses them.
        """
        rates = held.rates
        used = held.tokens if usage is None else usage.total_tokens
        tokens = used if rates else 0
        if not held.charges:
            try:
                await self.store.settle(held.request_id, (), None, rates, tokens)
            except Exception:
                # No marker guards a rate-only settlement: a retry of one that did arrive counts its tokens
                # twice, which only errs towards refusing.
                self.retries.add(Settlement(held.request_id, (), None, rates, tokens))
                raise
            finally:
                self._record(held, 0, used)
            return
        # Without usage the upper bound is charged: the request ran and its cost is unknown.
        actual = held.amount if usage is None else self.pricer.actual(held.price_model, usage)
        charge = Charge(held.request_id, actual, held.model, held.columns, held.reserved_at_ms, used)
        counters = held.counters
        if not counters and not rates:
            # Spend-tracking only (no budget applied): the ledger row is the whole settlement.
            self.ledger.submit(charge)
            return
        try:
            spends = await self.store.settle(held.request_id, counters, actual, rates, tokens)
        except BaseException as error:
            # The durable record must still learn the charge (a repeated one is skipped by request id).
            self.ledger.submit(charge)
            if isinstance(error, Exception):
                # Cancelled, the store has the settlement already (`cancel_safe`); failed, it may not.
                self.retries.add(Settlement(held.request_id, counters, actual, rates, tokens))
            raise
        if spends is None:
            return  # already settled: its charge is already recorded
        self.ledger.submit(charge)
        for counter, spend in _past_soft(counters, spends, actual):
            await self._on_soft(counter, spend)

    async def _retried(self, settlement: Settlement, spends: list[int]) -> None:
        if settlement.actual is not None:
            for counter, spend in _past_soft(settlement.counters, spends, settlement.actual):
                await self._on_soft(counter, spend)

    async def release(self, held: BudgetReservation) -> None:
        counters = held.counters if held.charges else ()
        if counters or held.rates:
            try:
                await self.store.settle(held.request_id, counters, None, held.rates, 0)
            finally:
                # It was admitted: it counts against rpm limits when they are rebuilt.
                self._record(held, 0, 0)

    def _record(self, held: BudgetReservation, amount: int, tokens: int) -> None:
        """The ledger row of a request that charged nothing, when an rpm or tpm limit applied to it."""
        if any(limit.kind != "parallel" for limit in held.rates):
            charge = Charge(held.request_id, amount, held.model or None, held.columns, held.reserved_at_ms, tokens)
            self.ledger.submit(charge, needed=False)


def _past_soft(counters: Sequence[Counter], spends: Sequence[int], actual: int) -> list[tuple[Counter, int]]:
    """The counters (with their new spend) that a charge of `actual` took past their soft budget."""
    return [
        (counter, spend)
        for counter, spend in zip(counters, spends, strict=True)
        if (soft := counter.rule.soft) is not None and spend >= 0 and spend - actual <= soft < spend
    ]


class BudgetReservation(Reservation):
    """The hold of one request on its counters and rate limits; settled once through the `Accountant`.

    A plain class with slots: one is built per request, and a dataclass's generated
    `__init__` with defaults costs more than this one.
    """

    __slots__ = (
        "accountant", "amount", "charges", "columns", "counters", "headers",
        "model", "price_model", "rates", "request_id", "reserved_at_ms", "settled", "tokens",
    )  # fmt: skip

    def __init__(
        self,
        accountant: Accountant,
        request_id: str,
        counters: Sequence[Counter],
        amount: int,
        model: str,
        columns: Mapping[str, str],
        reserved_at_ms: int,
        rates: Sequence[RateLimit] = (),
        charges: bool = True,
        tokens: int = 0,
        price_model: str | None = None,
    ) -> None:
        self.accountant = accountant
        self.request_id = request_id
        self.counters = counters
        self.amount = amount
        self.model = model
        """The requested model the charge is recorded under (per-model budgets are rebuilt by it)."""
        self.price_model = model if price_model is None else price_model
        """Whose rates a settlement charges when the usage names no priced model: the dearest model the request
        could reach (its fallbacks included)."""
        self.columns = columns
        self.reserved_at_ms = reserved_at_ms
        self.rates = rates
        self.charges = charges
        """False when only rate limits apply (no priced model)."""
        self.tokens = tokens
        """The most tokens the request can use; charged to tpm limits when no usage is reported."""
        self.settled = False
        self.headers: Mapping[str, str] = _NO_HEADERS

    @property
    def cancel_safe(self) -> bool:  # type: ignore[override]
        # A cancelled store settlement still reaches the store, and `Accountant.commit` still queues the charge.
        return self.accountant.store.cancel_safe

    async def commit(self, usage: Usage | None) -> None:
        if self.settled:
            return
        self.settled = True
        await self.accountant.commit(self, usage)

    async def release(self) -> None:
        if self.settled:
            return
        self.settled = True
        await self.accountant.release(self)

    def __repr__(self) -> str:
        return f"BudgetReservation(request_id={self.request_id!r}, amount={self.amount}, counters={len(self.counters)})"

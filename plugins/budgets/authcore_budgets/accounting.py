"""Reserve, commit and release: the counters (fast, atomic) and the ledger (durable) kept in step."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from authcore import Reservation, Usage
from authcore_budgets.entities import Counter
from authcore_budgets.ledger import Charge, Ledger
from authcore_budgets.pricing import Pricer
from authcore_budgets.ratelimits import RateLimit
from authcore_budgets.store import CounterStore, ReserveOutcome

logger = logging.getLogger("authcore.budgets")

LOAD_ATTEMPTS = 8
"""Rounds of loading counters from the ledger before the request is refused (they only race settlements)."""


class CountersNotLoaded(Exception):
    """Counters kept changing while they were loaded from the ledger."""


SoftLimitHook = Callable[[Counter, int], Awaitable[None]]
"""Called with a counter and its new spend when a settlement takes it past its soft budget."""


class Accountant:
    """Owns the hot path's state changes; never decides HTTP responses."""

    def __init__(
        self, store: CounterStore, ledger: Ledger, pricer: Pricer, *, hold_ms: int, on_soft: SoftLimitHook
    ) -> None:
        self.store = store
        self.ledger = ledger
        self.pricer = pricer
        self.hold_ms = hold_ms
        self._on_soft = on_soft

    async def reserve(self, request_id: str, counters: Sequence[Counter], amount: int) -> ReserveOutcome:
        """Hold `amount` on every counter or on none, loading counters the store does not have yet."""
        self.ledger.check_backlog()
        for _ in range(LOAD_ATTEMPTS):
            outcome = await self.store.reserve(request_id, counters, amount, self.hold_ms)
            if not outcome.missing:
                return outcome
            for index in outcome.missing:
                await self.load(counters[index])
        raise CountersNotLoaded

    async def load(self, counter: Counter) -> None:
        """Set a missing counter to its ledger total (after a restart, data loss or a new period)."""
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
        # Without usage the upper bound is charged: the request ran and its cost is unknown.
        actual = held.amount if usage is None else self.pricer.actual(held.model, usage)
        charge = Charge(held.request_id, actual, held.model, held.columns, held.reserved_at_ms)
        if not held.counters:
            # Spend-tracking only (no budget applied): the ledger row is the whole settlement.
            self.ledger.submit(charge)
            return
        try:
            spends = await self.store.settle(held.request_id, held.counters, actual)
        except BaseException:
            # The durable record must still learn the charge (a repeated one is skipped by request id).
            self.ledger.submit(charge)
            raise
        if spends is None:
            return  # already settled: its charge is already recorded
        self.ledger.submit(charge)
        for counter, spend in zip(held.counters, spends, strict=True):
            soft = counter.rule.soft
            if soft is not None and spend >= 0 and spend - actual <= soft < spend:
                await self._on_soft(counter, spend)

    async def release(self, held: BudgetReservation) -> None:
        if not held.counters:
            return
        await self.store.settle(held.request_id, held.counters, None)


@dataclass(eq=False)
class BudgetReservation(Reservation):
    """The hold of one request on its counters; settled once through the `Accountant`."""

    accountant: Accountant
    request_id: str
    counters: Sequence[Counter]
    amount: int
    model: str
    columns: Mapping[str, str]
    reserved_at_ms: int
    rates: Sequence[RateLimit] = ()
    charges: bool = True
    """False when only rate limits apply (no priced model)."""
    tokens: int = 0
    """The most tokens the request can use; charged to tpm limits when no usage is reported."""
    settled: bool = field(default=False)

    async def commit(self, usage: Usage | None) -> None:
        if self.settled:
            return
        self.settled = True
        try:
            if self.charges:
                await self.accountant.commit(self, usage)
        finally:
            if self.rates:
                used = self.tokens if usage is None else usage.total_tokens
                await self.accountant.store.settle_rates(self.request_id, self.rates, used)

    async def release(self) -> None:
        if self.settled:
            return
        self.settled = True
        try:
            if self.charges:
                await self.accountant.release(self)
        finally:
            if self.rates:
                await self.accountant.store.settle_rates(self.request_id, self.rates, 0)

    def __repr__(self) -> str:
        return f"BudgetReservation(request_id={self.request_id!r}, amount={self.amount}, counters={len(self.counters)})"

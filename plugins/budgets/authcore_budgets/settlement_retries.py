"""Settlements the counter store did not take (Redis down or too slow), tried again until it does.

A settlement lost on the way would leave the counter short once the request's hold
expires: the next requests could then spend that charge a second time. So a failed
settlement stays here, in order, and a background task sends it again with a
growing pause until the store answers. The store's settled marker (`done:<request
id>`, kept for two hold TTLs) makes a repeat of a settlement that did arrive change
nothing; until a retry lands, the request's hold keeps counting against every
budget for up to `hold_ttl_s`, so no replica can spend the amount meanwhile.

What remains lost: the settlements of a process that stops before Redis answers
again (counted in the log at shutdown). The ledger still records them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from authcore_budgets.entities import Counter
from authcore_budgets.ratelimits import RateLimit
from authcore_budgets.store import CounterStore

logger = logging.getLogger("authcore.budgets")

FIRST_DELAY_S = 0.05
MAX_DELAY_S = 1.0
"""Longest pause between two attempts: a recovered Redis gets the backlog within a second."""
MAX_PENDING = 100_000
"""More than one process can have in flight when Redis stops (new reservations are refused by then)."""
CLOSE_TIMEOUT_S = 2.0
LOG_EVERY = 60
"""Failed attempts in a row per WARNING line (one a minute once attempts are a second apart)."""


@dataclass(frozen=True, slots=True)
class Settlement:
    """One `CounterStore.settle` call, kept to be made again."""

    request_id: str
    counters: Sequence[Counter]
    actual: int | None
    rates: Sequence[RateLimit]
    tokens: int


Settled = Callable[[Settlement, list[int]], Awaitable[None]]
"""Called with a retried settlement and the spends the store replied (not when it was already settled)."""


class SettlementRetries:
    """Failed settlements, sent again in the order they failed until the store takes them."""

    def __init__(
        self,
        store: CounterStore,
        on_settled: Settled,
        *,
        first_delay_s: float = FIRST_DELAY_S,
        max_delay_s: float = MAX_DELAY_S,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self._store = store
        self._on_settled = on_settled
        self._first_delay_s = first_delay_s
        self._max_delay_s = max_delay_s
        self._max_pending = max_pending
        self._pending: deque[Settlement] = deque()
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        return len(self._pending)

    def add(self, settlement: Settlement) -> None:
        """Keep `settlement` and make sure the background task is sending."""
        if len(self._pending) >= self._max_pending:
            logger.error("budgets: %d settlements wait for the store already; one more is dropped", self._max_pending)
            return
        self._pending.append(settlement)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._send_until_empty())

    async def _send_until_empty(self) -> None:
        delay = self._first_delay_s
        failures = 0
        try:
            while self._pending:
                await asyncio.sleep(delay)
                try:
                    await self._send_pending()
                except Exception as error:  # noqa: BLE001 - the store is still failing: wait longer
                    delay = min(delay * 2, self._max_delay_s)
                    failures += 1
                    if failures % LOG_EVERY == 1:  # the first failure, then about once a minute
                        logger.warning(
                            "budgets: %d settlements still wait for the store (%s)",
                            len(self._pending),
                            type(error).__name__,
                        )
                else:
                    delay = self._first_delay_s
                    failures = 0
        finally:
            self._task = None

    async def _send_pending(self) -> None:
        """Send the waiting settlements oldest first; stop at the first the store refuses (it stays first)."""
        sent = 0
        while self._pending:
            settlement = self._pending[0]
            spends = await self._store.settle(
                settlement.request_id, settlement.counters, settlement.actual, settlement.rates, settlement.tokens
            )
            self._pending.popleft()
            sent += 1
            if spends is not None:
                await self._on_settled(settlement, spends)
        if sent:
            logger.info("budgets: %d settlements reached the store after it failed", sent)

    async def aclose(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Send what waits (at shutdown); what cannot be sent is counted in the log."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if not self._pending:
            return
        try:
            async with asyncio.timeout(timeout_s):
                await self._send_pending()
        except Exception as error:  # noqa: BLE001 - shutting down: count the loss, raise nothing
            logger.error(
                "budgets: %d settlements lost at shutdown (%s): their counters miss those charges until rebuilt "
                "from the ledger",
                len(self._pending),
                type(error).__name__,
            )

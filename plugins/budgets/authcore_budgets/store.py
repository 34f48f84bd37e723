"""What a counter store does. Two exist: in process (`memory`) and shared (`redis`).

Counters are integers in micro-USD. A counter is `initialised` once its spend
was loaded from the ledger; until then it refuses reservations and keeps any
settlement that arrives as a `late` charge, so loading never loses one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from authcore_budgets.entities import Counter
from authcore_budgets.ratelimits import RateLimit


@dataclass(frozen=True, slots=True)
class ReserveOutcome:
    """`admitted`, or the exhausted rate limit, or the first counter that would exceed, or counters to load."""

    admitted: bool
    denied_index: int | None = None
    missing: tuple[int, ...] = ()
    rate_index: int | None = None
    """The exhausted rate limit (a refusal by rate, checked before any budget)."""
    retry_after_ms: int = 0
    """With `rate_index`: how long until that limit has room."""
    left: tuple[int, ...] = ()
    """When admitted: per rate limit, what it has left (requests, tokens or slots) and ms until it is full."""
    missing_rates: tuple[int, ...] = ()
    """rpm/tpm limits whose state the store may have lost (see `init_rate`): to load from the ledger first."""


ADMITTED = ReserveOutcome(True)


@dataclass(frozen=True, slots=True)
class CounterState:
    spent: int
    reserved: int


class CounterStore(Protocol):
    kind: str
    cancel_safe: bool
    """`settle` has sent its change before it first suspends: a cancelled caller loses nothing."""

    def reserve(
        self,
        request_id: str,
        counters: Sequence[Counter],
        amount: int,
        hold_ms: int,
        rates: Sequence[RateLimit] = (),
    ) -> ReserveOutcome | Awaitable[ReserveOutcome]:
        """Every rate limit has room and every counter spent + reserved + amount <= limit: take them all.

        Otherwise take nothing. Rate limits are checked before counters are loaded or checked. A store
        that answers without waiting (in process) returns the outcome; one that must wait, an awaitable.
        """
        ...

    async def settle(
        self,
        request_id: str,
        counters: Sequence[Counter],
        actual: int | None,
        rates: Sequence[RateLimit] = (),
        tokens: int = 0,
    ) -> list[int] | None:
        """Drop the holds and charge `actual` (`None` releases); free parallel slots, charge `tokens` to tpm.

        Per counter the new spend (-1: kept as late). `None` when this request was already settled (only
        settlements with counters are remembered, as before rate limits shared the call).
        """
        ...

    async def late_charges(self, counter: Counter) -> dict[str, int] | None:
        """Charges settled while the counter was not loaded; `None` once it is loaded."""
        ...

    async def initialise(self, counter: Counter, spent: int, seen_late: Collection[str]) -> bool:
        """Load the counter unless it is loaded; `False` when the late charges differ from `seen_late` (retry)."""
        ...

    async def init_rate(self, limit: RateLimit, used: int) -> None:
        """Start the lost state of an rpm or tpm limit from `used`: the requests or tokens the ledger recorded
        for it in the last window, as if all were used just now (never less strict than the state lost).

        A store reports a limit in `ReserveOutcome.missing_rates` when it has no state for it and may have
        lost it: within a window of losing its data (a Redis restart or FLUSHALL, a new process). A state
        that appeared meanwhile is kept.
        """
        ...

    async def read(self, counter: Counter) -> CounterState | None:
        """The counter, or `None` when it is not loaded."""
        ...

    async def aclose(self) -> None: ...

"""What a counter store does. Two exist: in process (`memory`) and shared (`redis`).

Counters are integers in micro-USD. A counter is `initialised` once its spend
was loaded from the ledger; until then it refuses reservations and keeps any
settlement that arrives as a `late` charge, so loading never loses one.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from authcore_budgets.entities import Counter
from authcore_budgets.ratelimits import RateLimit, RateOutcome


@dataclass(frozen=True, slots=True)
class ReserveOutcome:
    """`admitted`, or the index of the first counter that would exceed, or counters still to load."""

    admitted: bool
    denied_index: int | None = None
    missing: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class CounterState:
    spent: int
    reserved: int


class CounterStore(Protocol):
    kind: str

    async def reserve(self, request_id: str, counters: Sequence[Counter], amount: int, hold_ms: int) -> ReserveOutcome:
        """For every counter: spent + reserved + amount <= limit, then hold `amount` on all; else hold nothing."""
        ...

    async def settle(self, request_id: str, counters: Sequence[Counter], actual: int | None) -> list[int] | None:
        """Drop the holds and charge `actual` (`None` releases). Per counter the new spend (-1: kept as late).

        `None` when this request was already settled.
        """
        ...

    async def late_charges(self, counter: Counter) -> dict[str, int] | None:
        """Charges settled while the counter was not loaded; `None` once it is loaded."""
        ...

    async def initialise(self, counter: Counter, spent: int, seen_late: Collection[str]) -> bool:
        """Load the counter unless it is loaded; `False` when the late charges differ from `seen_late` (retry)."""
        ...

    async def read(self, counter: Counter) -> CounterState | None:
        """The counter, or `None` when it is not loaded."""
        ...

    async def acquire_rates(self, request_id: str, limits: Sequence[RateLimit], hold_ms: int) -> RateOutcome:
        """Take a request (rpm), check tokens (tpm) and a slot (parallel) on every limit, or nothing."""
        ...

    async def settle_rates(self, request_id: str, limits: Sequence[RateLimit], tokens: int) -> None:
        """Free the request's parallel slots and charge `tokens` to its tpm limits."""
        ...

    async def aclose(self) -> None: ...

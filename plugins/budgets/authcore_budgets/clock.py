"""The wall clock budgets run on: periods, holds and ledger rows are all in epoch milliseconds."""

from __future__ import annotations

import time


def wall_ms() -> int:
    """Now, in milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000

"""Durations as LiteLLM writes them: `30s`, `30m`, `30h`, `30d`, `2w`, `1mo` (calendar months).

Every plugin parses key lifetimes, grace periods and budget periods here, so one
spelling means the same thing everywhere. A month is a calendar month: one month
after Jan 31 is Feb 28 (or 29), the same day-of-month clamped to the month's end.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal, cast

Unit = Literal["s", "m", "h", "d", "w", "mo"]

UNIT_SECONDS: Final[dict[str, int]] = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
"""Fixed-length units; `mo` is not one of them (months differ in length)."""
DAYS_PER_MONTH_BOUND: Final = 31
"""A month is at most this many days: the bound used when checking a maximum."""
LONGEST_DAYS: Final = 36_525
"""No duration is longer than a century, whatever the caller allows: dates stay far inside datetime's range."""

_DURATION = re.compile(r"(\d{1,9})\s*(mo|s|m|h|d|w)")
_FORMS = "a whole number and a unit s, m, h, d, w or mo (e.g. 30s, 30m, 30h, 30d, 2w, 1mo)"


@dataclass(frozen=True, slots=True)
class Duration:
    """A positive count of one unit. Fixed units have a length in seconds; months are added on the calendar."""

    count: int
    unit: Unit

    def __str__(self) -> str:
        return f"{self.count}{self.unit}"

    @property
    def months(self) -> int | None:
        """The number of calendar months, or `None` for a fixed-length duration."""
        return self.count if self.unit == "mo" else None

    @property
    def seconds(self) -> int | None:
        """The exact length in seconds, or `None` for calendar months (their length depends on the start)."""
        return None if self.unit == "mo" else self.count * UNIT_SECONDS[self.unit]

    @property
    def max_seconds(self) -> int:
        """The longest this duration can be (months counted as 31 days): what a maximum is checked against."""
        return self.count * DAYS_PER_MONTH_BOUND * 86_400 if self.unit == "mo" else self.count * UNIT_SECONDS[self.unit]

    def after(self, start: datetime) -> datetime:
        """`start` plus this duration; months keep the day-of-month, clamped to the end of a shorter month."""
        if self.unit == "mo":
            return add_months(start, self.count)
        return start + timedelta(seconds=self.count * UNIT_SECONDS[self.unit])

    def from_now(self, now: datetime | None = None) -> timedelta:
        """How long this duration is when it starts `now` (default: the current UTC time)."""
        start = now if now is not None else datetime.now(UTC)
        return self.after(start) - start


def parse_duration(text: str, *, max_days: int | None = None) -> Duration:
    """`30s`, `30m`, `30h`, `30d`, `2w` or `1mo`; `ValueError` with a message fit for an API client otherwise.

    `max_days` bounds the duration, a month counting as 31 days (`117mo` fits in 3650 days, `120mo` does
    not); without it the bound is a century.
    """
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"duration {text!r} must be {_FORMS}")
    count = int(match.group(1))
    if count <= 0:
        raise ValueError(f"duration {text!r} must be positive")
    duration = Duration(count, cast(Unit, match.group(2)))  # the pattern matches units only
    bound = LONGEST_DAYS if max_days is None else min(max_days, LONGEST_DAYS)
    if duration.max_seconds > bound * 86_400:
        raise ValueError(f"duration {text!r} must be at most {bound} days")
    return duration


def add_months(moment: datetime, months: int) -> datetime:
    """`moment` moved by `months` calendar months (may be negative), the day clamped to the target month's end."""
    index = moment.year * 12 + (moment.month - 1) + months
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def month_period(anchor: datetime, months: int, now: datetime) -> tuple[datetime, datetime]:
    """The `[start, end)` period of `months` months that contains `now`, counted from `anchor`.

    Each boundary is `anchor` plus a whole number of periods (clamped per month, never
    drifting: from Jan 31 the boundaries are Feb 28/29, Mar 31, Apr 30, ...).
    """
    if months <= 0:
        raise ValueError("a month period must be at least one month")
    elapsed = (now.year - anchor.year) * 12 + (now.month - anchor.month)
    index = elapsed // months
    start = add_months(anchor, index * months)
    # The month arithmetic ignores the day and time: step back or forward by at most one period.
    while start > now:
        index -= 1
        start = add_months(anchor, index * months)
    end = add_months(anchor, (index + 1) * months)
    while end <= now:
        index += 1
        start, end = end, add_months(anchor, (index + 1) * months)
    return start, end

"""One duration syntax for every plugin: LiteLLM's `30s 30m 30h 30d 2w 1mo`, months on the calendar."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from authcore.durations import Duration, add_months, month_period, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("30m", 1800), ("30h", 108_000), ("30d", 2_592_000), ("2w", 1_209_600), (" 1h ", 3600)],
)
def test_fixed_units_have_a_length_in_seconds(text: str, seconds: int) -> None:
    duration = parse_duration(text)
    assert duration.seconds == seconds
    assert duration.months is None
    assert duration.after(datetime(2024, 1, 1, tzinfo=UTC)) == datetime(2024, 1, 1, tzinfo=UTC) + timedelta(
        seconds=seconds
    )


def test_mo_is_calendar_months_not_minutes() -> None:
    duration = parse_duration("1mo")
    assert duration == Duration(1, "mo")
    assert str(duration) == "1mo"
    assert duration.months == 1
    assert duration.seconds is None
    assert parse_duration("1m").seconds == 60


@pytest.mark.parametrize("text", ["", "30", "d", "30x", "1.5h", "-1d", "30 days", "1M", "mo", "1 mo 2"])
def test_malformed_durations_name_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match=r"s, m, h, d, w or mo \(e\.g\. 30s, 30m, 30h, 30d, 2w, 1mo\)"):
        parse_duration(text)


def test_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        parse_duration("0d")


def test_a_maximum_counts_a_month_as_its_longest() -> None:
    assert parse_duration("3650d", max_days=3650).seconds == 3650 * 86400
    assert parse_duration("117mo", max_days=3650).months == 117
    with pytest.raises(ValueError, match="at most 3650 days"):
        parse_duration("3651d", max_days=3650)
    with pytest.raises(ValueError, match="at most 3650 days"):
        parse_duration("120mo", max_days=3650)
    with pytest.raises(ValueError, match="at most 3650 days"):
        parse_duration("522w", max_days=3650)


def test_no_duration_is_longer_than_a_century() -> None:
    # Budget periods have no configured maximum; a huge one must not break date arithmetic later.
    assert parse_duration("36525d").seconds == 36_525 * 86_400
    assert parse_duration("1178mo").months == 1178
    for text in ("36526d", "1179mo", "999999999mo"):
        with pytest.raises(ValueError, match="at most 36525 days"):
            parse_duration(text)
    assert add_months(datetime(1970, 1, 31, tzinfo=UTC), 1178).year == 2068


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (datetime(2023, 1, 31, 12, 30, tzinfo=UTC), 1, datetime(2023, 2, 28, 12, 30, tzinfo=UTC)),
        (datetime(2024, 1, 31, tzinfo=UTC), 1, datetime(2024, 2, 29, tzinfo=UTC)),
        (datetime(2024, 3, 31, tzinfo=UTC), 1, datetime(2024, 4, 30, tzinfo=UTC)),
        (datetime(2024, 1, 15, tzinfo=UTC), 1, datetime(2024, 2, 15, tzinfo=UTC)),
        (datetime(2024, 12, 31, tzinfo=UTC), 2, datetime(2025, 2, 28, tzinfo=UTC)),
        (datetime(2024, 2, 29, tzinfo=UTC), 12, datetime(2025, 2, 28, tzinfo=UTC)),
        (datetime(2024, 3, 31, tzinfo=UTC), -1, datetime(2024, 2, 29, tzinfo=UTC)),
    ],
)
def test_months_keep_the_day_clamped_to_the_month_end(start: datetime, months: int, expected: datetime) -> None:
    assert add_months(start, months) == expected
    if months > 0:
        assert Duration(months, "mo").after(start) == expected


def test_month_from_now_is_the_calendar_length() -> None:
    assert parse_duration("1mo").from_now(datetime(2023, 2, 1, tzinfo=UTC)) == timedelta(days=28)
    assert parse_duration("1mo").from_now(datetime(2024, 2, 1, tzinfo=UTC)) == timedelta(days=29)
    assert parse_duration("1mo").from_now(datetime(2024, 1, 1, tzinfo=UTC)) == timedelta(days=31)


def test_month_periods_from_a_31st_do_not_drift() -> None:
    anchor = datetime(2024, 1, 31, tzinfo=UTC)
    ends = []
    now = anchor
    for _ in range(4):
        start, end = month_period(anchor, 1, now)
        assert start <= now < end
        ends.append(end)
        now = end
    # Feb is clamped to the 29th, but March is back on the 31st.
    assert ends == [
        datetime(2024, 2, 29, tzinfo=UTC),
        datetime(2024, 3, 31, tzinfo=UTC),
        datetime(2024, 4, 30, tzinfo=UTC),
        datetime(2024, 5, 31, tzinfo=UTC),
    ]


@pytest.mark.parametrize(
    ("now", "start", "end"),
    [
        (
            datetime(2024, 2, 29, 23, 59, tzinfo=UTC),
            datetime(2024, 2, 29, tzinfo=UTC),
            datetime(2024, 3, 31, tzinfo=UTC),
        ),
        (
            datetime(2024, 2, 28, 23, 59, tzinfo=UTC),
            datetime(2024, 1, 31, tzinfo=UTC),
            datetime(2024, 2, 29, tzinfo=UTC),
        ),
        (datetime(2024, 3, 30, tzinfo=UTC), datetime(2024, 2, 29, tzinfo=UTC), datetime(2024, 3, 31, tzinfo=UTC)),
        (datetime(2023, 12, 31, tzinfo=UTC), datetime(2023, 12, 31, tzinfo=UTC), datetime(2024, 1, 31, tzinfo=UTC)),
    ],
)
def test_the_period_containing_a_moment(now: datetime, start: datetime, end: datetime) -> None:
    anchor = datetime(2023, 1, 31, tzinfo=UTC)
    assert month_period(anchor, 1, now) == (start, end)


def test_multi_month_periods_count_from_the_anchor() -> None:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert month_period(epoch, 3, datetime(2024, 5, 17, tzinfo=UTC)) == (
        datetime(2024, 4, 1, tzinfo=UTC),
        datetime(2024, 7, 1, tzinfo=UTC),
    )
    assert month_period(epoch, 1, datetime(2024, 2, 1, tzinfo=UTC)) == (
        datetime(2024, 2, 1, tzinfo=UTC),
        datetime(2024, 3, 1, tzinfo=UTC),
    )

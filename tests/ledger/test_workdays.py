"""The holiday calendar and the day-counting conventions of `ledger.workdays`."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ledger
from ledger.errors import NeikongError
from ledger.workdays import (
    CalendarDefinitionError,
    OutsideCalendar,
    WorkCalendar,
    default_calendar,
    format_ts,
    parse_ts,
)

CAL = default_calendar()


def utc(text: str) -> datetime:
    return parse_ts(text)


# --- the calendar data ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2025, 1, 1), False),  # 元旦 (a Wednesday)
        (date(2025, 1, 26), True),  # Sunday made a working day (春节调休)
        (date(2025, 2, 4), False),  # last day of the 2025 Spring Festival break
        (date(2025, 2, 8), True),  # Saturday made a working day
        (date(2025, 4, 27), True),  # Sunday, 劳动节调休
        (date(2025, 10, 8), False),  # National Day + Mid-Autumn, 8 days
        (date(2025, 10, 11), True),  # Saturday made a working day
        (date(2026, 1, 4), True),  # Sunday, 元旦调休
        (date(2026, 2, 14), True),  # Saturday before the Spring Festival
        (date(2026, 2, 23), False),  # Monday, last day of the 9-day break
        (date(2026, 2, 28), True),
        (date(2026, 5, 9), True),
        (date(2026, 9, 20), True),  # Sunday before National Day
        (date(2026, 10, 1), False),
        (date(2026, 10, 7), False),  # Wednesday inside the break
        (date(2026, 10, 8), True),
        (date(2026, 10, 10), True),  # make-up working Saturday
        (date(2026, 10, 17), False),  # an ordinary Saturday
        (date(2026, 11, 2), True),  # an ordinary Monday
        (date(2027, 2, 8), False),  # provisional 2027 Spring Festival
    ],
)
def test_days_of_the_published_schedules(day: date, working: bool) -> None:
    assert CAL.is_working_day(day) is working


def test_each_year_has_the_statutory_number_of_working_days() -> None:
    # 261 weekdays in each of these years, minus the 13 statutory holidays (2024 revision):
    # the make-up days exactly offset the extra weekdays in each break.
    # 1 January is a holiday every year, so counting from it loses nothing.
    for year in (2025, 2026, 2027):
        assert not CAL.is_working_day(date(year, 1, 1))
        assert CAL.working_days_between(date(year, 1, 1), date(year, 12, 31)) == 248


def test_2027_is_marked_provisional_and_make_up_days_are_weekends() -> None:
    assert CAL.provisional_years == frozenset({2027})
    assert all(day.weekday() >= 5 for day in CAL.make_up_days)
    assert not CAL.rest_days & CAL.make_up_days
    text = (Path(ledger.__file__).parent / "calendars" / "cn.yaml").read_text("utf-8")
    entries_2027 = [line for line in text.splitlines() if "rest: [2027-" in line]
    assert len(entries_2027) == 7
    assert all(
        line.rstrip().split("#")[-1].strip().startswith("provisional") for line in entries_2027
    )


def test_dates_outside_the_calendar_are_an_error_not_a_guess() -> None:
    with pytest.raises(OutsideCalendar, match="2024"):
        CAL.is_working_day(date(2024, 12, 31))
    with pytest.raises(OutsideCalendar):
        CAL.is_working_day(date(2028, 1, 3))
    with pytest.raises(OutsideCalendar, match="past the calendar's end"):
        CAL.add_working_days(date(2027, 12, 20), 30)
    assert issubclass(OutsideCalendar, NeikongError)
    assert issubclass(OutsideCalendar, ValueError)


# --- counting ---------------------------------------------------------------------------------


def test_five_working_days_across_national_day_2026() -> None:
    # Day 0 = Wed 30 Sep. Working days after it: Thu 8 Oct, Fri 9, Sat 10 (make-up), Mon 12,
    # Tue 13 -> the limit ends at 24:00 CST on 13 October = 16:00Z.
    assert CAL.add_working_days(date(2026, 9, 30), 5) == date(2026, 10, 13)
    assert CAL.due_at("2026-09-30T08:00:00Z", 5, "working") == utc("2026-10-13T16:00:00Z")
    assert CAL.working_days_between(date(2026, 9, 30), date(2026, 10, 13)) == 5
    assert CAL.working_days_between(date(2026, 10, 13), date(2026, 9, 30)) == -5


def test_a_make_up_saturday_counts_as_a_working_day() -> None:
    # Without the make-up Saturday (10 Oct) the 3rd working day after 30 Sep would be 12 Oct.
    assert CAL.add_working_days(date(2026, 9, 30), 3) == date(2026, 10, 10)
    assert CAL.add_working_days(date(2026, 10, 9), 1) == date(2026, 10, 10)


def test_acceptance_day_is_the_china_standard_time_date() -> None:
    # 15:59:59Z is 23:59:59 CST on 29 Sep; 16:00:00Z is already 30 Sep in CST.
    assert CAL.local_date("2026-09-29T15:59:59Z") == date(2026, 9, 29)
    assert CAL.local_date("2026-09-29T16:00:00Z") == date(2026, 9, 30)
    # Day 0 = 29 Sep: 30 Sep, 8, 9, 10, 12 Oct.
    assert CAL.due_at("2026-09-29T15:59:59Z", 5, "working") == utc("2026-10-12T16:00:00Z")
    # Day 0 = 30 Sep: 8, 9, 10, 12, 13 Oct.
    assert CAL.due_at("2026-09-29T16:00:00Z", 5, "working") == utc("2026-10-13T16:00:00Z")


def test_zero_days_is_the_end_of_the_acceptance_day() -> None:
    assert CAL.due_at("2026-03-02T01:00:00Z", 0, "working") == utc("2026-03-02T16:00:00Z")
    assert CAL.due_at("2026-03-02T01:00:00Z", 0, "natural") == utc("2026-03-02T16:00:00Z")
    # Accepted online on a holiday: still that day.
    assert CAL.due_at("2026-10-03T02:00:00Z", 0, "working") == utc("2026-10-03T16:00:00Z")


def test_working_days_from_a_holiday_start_after_it() -> None:
    # Accepted on Sat 3 Oct 2026 (holiday): 1st working day is Thu 8 Oct.
    assert CAL.due_at("2026-10-03T02:00:00Z", 1, "working") == utc("2026-10-08T16:00:00Z")


def test_natural_days_whose_last_day_is_a_holiday_roll_forward() -> None:
    # 10 days from 24 Sep 2026 end on Sun 4 Oct (National Day) -> the next working day, 8 Oct.
    assert CAL.due_at("2026-09-24T02:00:00Z", 10, "natural") == utc("2026-10-08T16:00:00Z")
    assert CAL.due_at("2026-09-24T02:00:00Z", 10, "natural", roll_forward=False) == utc(
        "2026-10-04T16:00:00Z"
    )
    # Ending on a working day: no change. 30 days from 2 Mar 2026 = Wed 1 Apr.
    assert CAL.due_at("2026-03-02T02:00:00Z", 30, "natural") == utc("2026-04-01T16:00:00Z")


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="working or natural"):
        CAL.due_at("2026-03-02T02:00:00Z", 3, "lunar")
    with pytest.raises(ValueError, match=">= 0"):
        CAL.add_working_days(date(2026, 3, 2), -1)
    with pytest.raises(ValueError, match="not UTC"):
        parse_ts("2026-03-02T02:00:00+08:00")
    with pytest.raises(ValueError, match="naive"):
        parse_ts(datetime(2026, 3, 2))


def test_timestamp_round_trip() -> None:
    assert format_ts(utc("2026-03-02T02:00:00Z")) == "2026-03-02T02:00:00Z"
    assert format_ts(utc("2026-03-02T02:00:00.250000Z")) == "2026-03-02T02:00:00.250000Z"
    assert parse_ts(datetime(2026, 3, 2, 10, tzinfo=UTC) + timedelta(hours=1)).hour == 11


days_in_range = st.dates(min_value=date(2025, 1, 1), max_value=date(2027, 6, 30))


@given(days_in_range, st.integers(min_value=0, max_value=60))
def test_add_and_between_are_inverse(start: date, n: int) -> None:
    end = CAL.add_working_days(start, n)
    assert CAL.working_days_between(start, end) == n
    assert end >= start
    if n > 0:
        assert CAL.is_working_day(end)
        # No working day is skipped: the one before `end` is the (n-1)th.
        assert CAL.add_working_days(start, n - 1) < end


@given(days_in_range, st.integers(min_value=0, max_value=60), st.integers(0, 60))
def test_limits_compose(start: date, a: int, b: int) -> None:
    assert CAL.add_working_days(CAL.add_working_days(start, a), b) == CAL.add_working_days(
        start, a + b
    )


# --- the file format --------------------------------------------------------------------------


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "cal.yaml"
    path.write_text(body, "utf-8")
    return path


def test_a_make_up_day_on_a_weekday_is_rejected(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "id: x\nyears:\n  2026:\n    holidays:\n"
        "      - {name: a, rest: [2026-01-01, 2026-01-01], workdays: [2026-01-05]}\n",
    )
    with pytest.raises(CalendarDefinitionError, match="not a weekend"):
        WorkCalendar.load(path)


def test_years_must_be_contiguous(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "id: x\nyears:\n  2025:\n    holidays: []\n  2027:\n    holidays: []\n",
    )
    with pytest.raises(CalendarDefinitionError, match="contiguous"):
        WorkCalendar.load(path)


def test_a_malformed_file_is_a_definition_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "id: x\nyears:\n  2026:\n    holidays:\n      - {name: a}\n")
    with pytest.raises(CalendarDefinitionError):
        WorkCalendar.load(path)


def test_a_custom_calendar_file(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "id: test\nyears:\n  2026:\n    holidays:\n"
        "      - {name: a, rest: [2026-03-02, 2026-03-03], workdays: [2026-03-07]}\n",
    )
    cal = WorkCalendar.load(path)
    assert not cal.is_working_day(date(2026, 3, 2))
    assert cal.is_working_day(date(2026, 3, 7))
    assert cal.add_working_days(date(2026, 3, 1), 1) == date(2026, 3, 4)


@given(st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31)))
def test_local_date_fast_path_equals_the_datetime_arithmetic(moment: datetime) -> None:
    aware = moment.replace(tzinfo=UTC)
    for text in (aware.strftime("%Y-%m-%dT%H:%M:%SZ"), format_ts(aware)):
        assert WorkCalendar.local_date(text) == (aware + timedelta(hours=8)).date()

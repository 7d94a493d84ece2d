"""Snapshot policies: CloudStack's schedules, bad input named by field, next run times across DST."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from schemas.errors import InvalidArgument
from schemas.snapshot import IntervalType
from services.domain.policies import Schedule, SnapshotPolicy, parse_schedule

pytestmark = pytest.mark.unit

NEW_YORK = ZoneInfo("America/New_York")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def runs(policy: SnapshotPolicy, after: datetime, count: int) -> list[datetime]:
    found = []
    for _ in range(count):
        after = policy.next_run(after)
        found.append(after)
    return found


@pytest.mark.parametrize(
    ("interval", "text", "expected"),
    [
        (IntervalType.HOURLY, "5", Schedule(IntervalType.HOURLY, 5)),
        (IntervalType.HOURLY, "59", Schedule(IntervalType.HOURLY, 59)),
        (IntervalType.DAILY, "30:02", Schedule(IntervalType.DAILY, 30, 2)),
        (IntervalType.DAILY, "0:23", Schedule(IntervalType.DAILY, 0, 23)),
        (IntervalType.WEEKLY, "15:10:1", Schedule(IntervalType.WEEKLY, 15, 10, 1)),
        (IntervalType.WEEKLY, "15:10:7", Schedule(IntervalType.WEEKLY, 15, 10, 7)),
        (IntervalType.MONTHLY, "00:04:28", Schedule(IntervalType.MONTHLY, 0, 4, 28)),
        (IntervalType.MONTHLY, " 00:04:1 ", Schedule(IntervalType.MONTHLY, 0, 4, 1)),
    ],
)
def test_schedules_parse_minutes_first(interval: IntervalType, text: str, expected: Schedule) -> None:
    assert parse_schedule(interval, text) == expected


def test_a_schedule_prints_as_cloudstack_writes_it() -> None:
    assert str(Schedule(IntervalType.WEEKLY, 5, 3, 2)) == "05:03:02"
    assert str(Schedule(IntervalType.HOURLY, 7)) == "07"


@pytest.mark.parametrize(
    ("interval", "text", "says"),
    [
        (IntervalType.HOURLY, "30:02", "is not a HOURLY schedule: expected MM (minute 0-59)"),
        (IntervalType.HOURLY, "", "expected MM"),
        (IntervalType.HOURLY, "60", "minute 60 is out of range 0-59"),
        (IntervalType.HOURLY, "-1", "expected MM"),
        (IntervalType.HOURLY, "1.5", "expected MM"),
        (IntervalType.DAILY, "30", "is not a DAILY schedule: expected MM:HH"),
        (IntervalType.DAILY, "30:24", "hour 24 is out of range 0-23"),
        (IntervalType.DAILY, "aa:bb", "expected MM:HH"),
        (IntervalType.DAILY, "030:02", "expected MM:HH"),
        (IntervalType.WEEKLY, "30:02", "expected MM:HH:D (minute 0-59, hour 0-23, day of week 1-7 with 1 = Sunday)"),
        (IntervalType.WEEKLY, "30:02:0", "day of week 0 is out of range 1-7"),
        (IntervalType.WEEKLY, "30:02:8", "day of week 8 is out of range 1-7"),
        (IntervalType.MONTHLY, "30:02:29", "day of month 29 is out of range 1-28"),
        (IntervalType.MONTHLY, "30:02:0", "day of month 0 is out of range 1-28"),
        (IntervalType.MONTHLY, "30:02:1:1", "expected MM:HH:DD"),
    ],
)
def test_a_bad_schedule_is_refused_naming_the_field_and_the_format(
    interval: IntervalType, text: str, says: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        parse_schedule(interval, text)
    assert refused.value.field == "schedule"
    assert says in str(refused.value)


@pytest.mark.parametrize(
    ("interval", "schedule", "timezone", "max_snaps", "field"),
    [
        ("YEARLY", "5", "UTC", 3, "interval_type"),
        ("HOURLY", "5:5", "UTC", 3, "schedule"),
        ("HOURLY", "5", "Mars/Olympus_Mons", 3, "timezone"),
        ("HOURLY", "5", "../../etc/passwd", 3, "timezone"),
        ("HOURLY", "5", "", 3, "timezone"),
        ("HOURLY", "5", "UTC", 0, "max_snaps"),
    ],
)
def test_a_bad_policy_is_refused_naming_the_field(
    interval: str, schedule: str, timezone: str, max_snaps: int, field: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        SnapshotPolicy.parse(interval, schedule, timezone, max_snaps)
    assert refused.value.field == field


def test_interval_type_is_case_insensitive() -> None:
    assert SnapshotPolicy.parse("daily", "0:0", "UTC", 1).schedule.interval_type is IntervalType.DAILY


def test_next_run_needs_an_aware_time() -> None:
    policy = SnapshotPolicy.parse("HOURLY", "5", "UTC", 1)
    with pytest.raises(InvalidArgument) as refused:
        policy.next_run(datetime(2026, 1, 1))
    assert refused.value.field == "after"


def test_hourly_runs_at_the_minute_strictly_after() -> None:
    policy = SnapshotPolicy.parse("HOURLY", "5", "UTC", 1)
    assert policy.next_run(utc(2026, 1, 1, 10, 0)) == utc(2026, 1, 1, 10, 5)
    assert policy.next_run(utc(2026, 1, 1, 10, 5)) == utc(2026, 1, 1, 11, 5)
    assert policy.next_run(utc(2026, 1, 1, 10, 4, 59, 999999)) == utc(2026, 1, 1, 10, 5)
    assert policy.next_run(utc(2026, 12, 31, 23, 30)) == utc(2027, 1, 1, 0, 5)


def test_hourly_reads_the_minute_on_the_local_clock() -> None:
    kolkata = SnapshotPolicy.parse("HOURLY", "0", "Asia/Kolkata", 1)  # UTC+05:30
    assert kolkata.next_run(utc(2026, 1, 1, 10, 0)) == utc(2026, 1, 1, 10, 30)


def test_results_are_in_utc_whatever_the_input_zone() -> None:
    policy = SnapshotPolicy.parse("DAILY", "0:12", "Europe/Paris", 1)
    after = datetime(2026, 1, 1, 9, 0, tzinfo=NEW_YORK)  # 14:00 UTC, 15:00 in Paris
    run = policy.next_run(after)
    assert run == utc(2026, 1, 2, 11, 0)
    assert run.tzinfo is UTC


def test_daily_uses_the_policy_time_zone_even_when_the_utc_date_differs() -> None:
    policy = SnapshotPolicy.parse("DAILY", "30:23", "America/New_York", 1)
    # 03:00 UTC on Jan 2 is still 22:00 on Jan 1 in New York: today's 23:30 is still ahead.
    assert policy.next_run(utc(2026, 1, 2, 3, 0)) == utc(2026, 1, 2, 4, 30)


def test_weekly_day_one_is_sunday() -> None:
    policy = SnapshotPolicy.parse("WEEKLY", "0:9:1", "UTC", 1)
    run = policy.next_run(utc(2026, 1, 1, 0, 0))  # a Thursday
    assert run == utc(2026, 1, 4, 9, 0)
    assert run.strftime("%A") == "Sunday"
    assert policy.next_run(run) == run + timedelta(days=7)
    saturday = SnapshotPolicy.parse("WEEKLY", "0:9:7", "UTC", 1).next_run(utc(2026, 1, 1, 0, 0))
    assert saturday.strftime("%A") == "Saturday"


def test_monthly_runs_on_its_day_and_moves_to_the_next_month() -> None:
    policy = SnapshotPolicy.parse("MONTHLY", "0:1:28", "UTC", 1)
    assert runs(policy, utc(2026, 1, 28, 1, 0), 3) == [
        utc(2026, 2, 28, 1, 0),
        utc(2026, 3, 28, 1, 0),
        utc(2026, 4, 28, 1, 0),
    ]
    assert SnapshotPolicy.parse("MONTHLY", "0:0:1", "UTC", 1).next_run(utc(2026, 12, 15)) == utc(2027, 1, 1)


def test_daily_at_a_time_the_spring_jump_skips_runs_that_much_later() -> None:
    policy = SnapshotPolicy.parse("DAILY", "30:02", "America/New_York", 1)
    # 2026-03-08 02:00 EST jumps to 03:00 EDT: 02:30 does not exist, it runs at 03:30 EDT (07:30 UTC).
    run = policy.next_run(utc(2026, 3, 8, 5, 0))
    assert run == utc(2026, 3, 8, 7, 30)
    assert run.astimezone(NEW_YORK).strftime("%H:%M %Z") == "03:30 EDT"
    assert policy.next_run(run) == utc(2026, 3, 9, 6, 30)  # 02:30 EDT the next day


def test_daily_at_a_time_the_autumn_repeats_runs_once_at_its_first_occurrence() -> None:
    policy = SnapshotPolicy.parse("DAILY", "30:01", "America/New_York", 1)
    # 2026-11-01 01:30 happens twice: 05:30 UTC (EDT) and 06:30 UTC (EST).
    first = policy.next_run(utc(2026, 11, 1, 0, 0))
    assert first == utc(2026, 11, 1, 5, 30)
    assert policy.next_run(first) == utc(2026, 11, 2, 6, 30)


def test_daily_keeps_the_wall_clock_time_across_dst() -> None:
    policy = SnapshotPolicy.parse("DAILY", "0:12", "Europe/Paris", 1)
    before, after = runs(policy, utc(2026, 3, 28, 12, 0), 2)
    assert before == utc(2026, 3, 29, 10, 0)  # CEST from 29 March: noon is 10:00 UTC
    assert after == utc(2026, 3, 30, 10, 0)
    assert policy.next_run(utc(2026, 3, 27, 12, 0)) == utc(2026, 3, 28, 11, 0)  # still CET


def test_hourly_runs_once_in_every_real_hour_across_the_autumn_repeat() -> None:
    policy = SnapshotPolicy.parse("HOURLY", "30", "America/New_York", 1)
    found = runs(policy, utc(2026, 11, 1, 4, 0), 4)
    assert found == [utc(2026, 11, 1, hour, 30) for hour in (4, 5, 6, 7)]
    local = [run.astimezone(NEW_YORK).strftime("%H:%M %Z") for run in found]
    assert local == ["00:30 EDT", "01:30 EDT", "01:30 EST", "02:30 EST"]


def test_hourly_skips_nothing_real_across_the_spring_jump() -> None:
    policy = SnapshotPolicy.parse("HOURLY", "30", "America/New_York", 1)
    found = runs(policy, utc(2026, 3, 8, 5, 0), 3)
    assert found == [utc(2026, 3, 8, hour, 30) for hour in (5, 6, 7)]
    assert [run.astimezone(NEW_YORK).strftime("%H:%M") for run in found] == ["00:30", "01:30", "03:30"]


def test_weekly_across_a_dst_change_keeps_its_local_time() -> None:
    policy = SnapshotPolicy.parse("WEEKLY", "0:2:1", "Europe/Paris", 1)  # Sundays at 02:00
    # 2026-03-29 is the Sunday Paris jumps from 02:00 to 03:00: 02:00 does not exist and runs at 03:00 CEST.
    assert policy.next_run(utc(2026, 3, 23)) == utc(2026, 3, 29, 1, 0)
    assert policy.next_run(utc(2026, 3, 29, 1, 0)) == utc(2026, 4, 5, 0, 0)

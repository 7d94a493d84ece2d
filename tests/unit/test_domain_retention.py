"""Prune rules over calendars: keep-last, then hourly, daily, ISO-weekly, monthly and yearly periods on the
schedule's clock, DST changes included."""

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from schemas.errors import InvalidArgument
from services.domain.retention import Keep, plan_prune

pytestmark = pytest.mark.unit
UTC_ZONE = ZoneInfo("UTC")
PARIS = ZoneInfo("Europe/Paris")


def _backups(*instants: datetime) -> list[tuple[uuid.UUID, datetime]]:
    return [(uuid.uuid4(), instant) for instant in instants]


def _kept(backups: list[tuple[uuid.UUID, datetime]], keep: Keep, zone: ZoneInfo = UTC_ZONE) -> list[datetime]:
    return sorted(decision.created_at for decision in plan_prune(backups, keep, zone) if decision.kept_by)


def test_keep_last_keeps_the_newest() -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    backups = _backups(*(start + timedelta(hours=hour) for hour in range(5)))
    assert _kept(backups, Keep(last=3)) == [start + timedelta(hours=hour) for hour in (2, 3, 4)]


def test_keep_daily_keeps_the_newest_of_each_of_the_newest_days() -> None:
    day = datetime(2026, 3, 10, tzinfo=UTC)
    backups = _backups(
        day + timedelta(hours=1), day + timedelta(hours=20), day - timedelta(hours=2), day - timedelta(days=3)
    )
    assert _kept(backups, Keep(daily=2)) == [day - timedelta(hours=2), day + timedelta(hours=20)]
    # a day with no backup counts for nothing: three daily slots reach back to the backup three days earlier
    assert _kept(backups, Keep(daily=3)) == [
        day - timedelta(days=3),
        day - timedelta(hours=2),
        day + timedelta(hours=20),
    ]


def test_a_period_kept_by_an_earlier_rule_does_not_count_again() -> None:
    day = datetime(2026, 3, 10, 12, tzinfo=UTC)
    backups = _backups(day, day - timedelta(hours=1), day - timedelta(days=1), day - timedelta(days=2))
    decisions = {d.created_at: d.kept_by for d in plan_prune(backups, Keep(last=1, daily=2), UTC_ZONE)}
    assert decisions == {
        day: "last",
        day - timedelta(hours=1): None,  # its day is already kept by keep-last
        day - timedelta(days=1): "daily",
        day - timedelta(days=2): "daily",
    }


def test_weekly_counts_iso_weeks_across_a_new_year() -> None:
    backups = _backups(
        datetime(2027, 1, 1, 12, tzinfo=UTC),  # Friday of ISO week 2026-W53
        datetime(2026, 12, 28, 12, tzinfo=UTC),  # Monday of the same week
        datetime(2026, 12, 27, 12, tzinfo=UTC),  # Sunday of 2026-W52
    )
    assert _kept(backups, Keep(weekly=2)) == [
        datetime(2026, 12, 27, 12, tzinfo=UTC),
        datetime(2027, 1, 1, 12, tzinfo=UTC),
    ]


def test_monthly_and_yearly() -> None:
    backups = _backups(*(datetime(2025 + month // 12, month % 12 + 1, 15, tzinfo=UTC) for month in range(24)))
    assert len(_kept(backups, Keep(monthly=6))) == 6
    assert _kept(backups, Keep(yearly=5)) == [datetime(2025, 12, 15, tzinfo=UTC), datetime(2026, 12, 15, tzinfo=UTC)]


def test_hourly_in_paris_when_the_clock_goes_back_counts_the_repeated_hour_once() -> None:
    # 2026-10-25: 03:00 CEST becomes 02:00 CET. 00:30 UTC and 01:30 UTC both read 02:30 in Paris.
    first, repeated = datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    before = datetime(2026, 10, 24, 23, 30, tzinfo=UTC)  # 01:30 CEST
    backups = _backups(before, first, repeated)
    assert _kept(backups, Keep(hourly=2), PARIS) == [before, repeated]
    assert _kept(backups, Keep(hourly=2), UTC_ZONE) == [first, repeated]


def test_daily_follows_the_local_day_when_the_clock_goes_forward() -> None:
    # 2026-03-29 in Paris: 02:00 CET becomes 03:00 CEST; 22:30 UTC on the 28th is already the 29th locally (23:30 CET
    # is the 28th; 22:30 UTC on the 29th is 00:30 CEST on the 30th).
    backups = _backups(
        datetime(2026, 3, 28, 22, 30, tzinfo=UTC),  # 23:30 CET on the 28th
        datetime(2026, 3, 29, 21, 30, tzinfo=UTC),  # 23:30 CEST on the 29th
        datetime(2026, 3, 29, 22, 30, tzinfo=UTC),  # 00:30 CEST on the 30th
    )
    assert len(_kept(backups, Keep(daily=3), PARIS)) == 3
    assert _kept(backups, Keep(daily=3), UTC_ZONE) == [
        datetime(2026, 3, 28, 22, 30, tzinfo=UTC),
        datetime(2026, 3, 29, 22, 30, tzinfo=UTC),
    ]


def test_a_prune_without_rules_or_with_negative_counts_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="at least one"):
        Keep()
    with pytest.raises(InvalidArgument, match="0 or more"):
        Keep(last=-1)

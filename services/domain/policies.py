"""Snapshot policies: CloudStack's schedules, read in the policy's time zone, and when each runs next.

Schedules put minutes first, as CloudStack writes them: HOURLY `MM`, DAILY `MM:HH`, WEEKLY `MM:HH:D` (D 1-7,
1 = Sunday, as Java's Calendar counts), MONTHLY `MM:HH:DD` (DD 1-28, so that every month has the day).

Across daylight-saving changes the wall clock decides, like Java's ZonedDateTime: a daily run at a time that
does not exist that day (the clock jumps over it) runs that much later (02:30 becomes 03:30); a time that happens
twice runs once, at its first occurrence. An hourly policy runs once in every real hour, at minute MM of the
local clock, so the repeated hour gets its run and the skipped one costs none.
"""

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from schemas.errors import InvalidArgument
from schemas.snapshot import IntervalType

_FORMATS = {
    IntervalType.HOURLY: ("MM", "minute 0-59"),
    IntervalType.DAILY: ("MM:HH", "minute 0-59, hour 0-23"),
    IntervalType.WEEKLY: ("MM:HH:D", "minute 0-59, hour 0-23, day of week 1-7 with 1 = Sunday"),
    IntervalType.MONTHLY: ("MM:HH:DD", "minute 0-59, hour 0-23, day of month 1-28"),
}
_PART = re.compile(r"\d{1,2}")
# Bounds of each schedule part, in the order they are written.
_BOUNDS = ((0, 59, "minute"), (0, 23, "hour"))
_DAY_BOUNDS = {IntervalType.WEEKLY: (1, 7, "day of week"), IntervalType.MONTHLY: (1, 28, "day of month")}
# Long enough to reach the next matching day of any schedule (a monthly day 1-28 is at most ~31 days away).
_DAYS_TO_SEARCH = 64
_MINUTES_TO_SEARCH = 3 * 60


@dataclass(frozen=True, slots=True)
class Schedule:
    """A parsed schedule. `day` is the day of week (1 = Sunday) for WEEKLY, of month for MONTHLY, else None."""

    interval_type: IntervalType
    minute: int
    hour: int | None = None
    day: int | None = None

    def __str__(self) -> str:
        parts = [self.minute, self.hour, self.day]
        return ":".join(f"{part:02d}" for part in parts if part is not None)


def parse_interval_type(value: str) -> IntervalType:
    """Return the interval type named by `value` (any case), or InvalidArgument naming the field."""
    try:
        return IntervalType(value.upper())
    except ValueError:
        names = ", ".join(kind.value for kind in IntervalType)
        raise InvalidArgument(f"interval type {value!r} is not one of {names}", field="interval_type") from None


def parse_schedule(interval_type: IntervalType, schedule: str) -> Schedule:
    """Parse a CloudStack schedule for `interval_type`, or raise InvalidArgument naming the field `schedule`."""
    expected, meaning = _FORMATS[interval_type]
    parts = schedule.strip().split(":")
    if len(parts) != len(expected.split(":")) or not all(_PART.fullmatch(part) for part in parts):
        raise InvalidArgument(
            f"schedule {schedule!r} is not a {interval_type} schedule: expected {expected} ({meaning})",
            field="schedule",
        )
    values = [int(part) for part in parts]
    bounds = list(_BOUNDS[: min(len(values), 2)])
    if interval_type in _DAY_BOUNDS:
        bounds.append(_DAY_BOUNDS[interval_type])
    for value, (low, high, name) in zip(values, bounds, strict=True):
        if not low <= value <= high:
            raise InvalidArgument(
                f"schedule {schedule!r}: {name} {value} is out of range {low}-{high} ({interval_type} is {expected})",
                field="schedule",
            )
    return Schedule(
        interval_type,
        minute=values[0],
        hour=values[1] if len(values) > 1 else None,
        day=values[2] if len(values) > 2 else None,
    )


def load_time_zone(name: str) -> ZoneInfo:
    """Return the IANA time zone `name`, or InvalidArgument naming the field `timezone`."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidArgument(
            f"time zone {name!r} is unknown: use an IANA name such as UTC or Europe/Paris", field="timezone"
        ) from None


@dataclass(frozen=True, slots=True)
class SnapshotPolicy:
    """A validated policy: when it runs, in which time zone, and how many of its snapshots it keeps."""

    schedule: Schedule
    time_zone: ZoneInfo
    max_snaps: int

    @classmethod
    def parse(cls, interval_type: str, schedule: str, timezone: str, max_snaps: int) -> "SnapshotPolicy":
        """Validate a policy as a user writes it; a bad part raises InvalidArgument naming its field."""
        kind = parse_interval_type(interval_type)
        parsed = parse_schedule(kind, schedule)
        zone = load_time_zone(timezone)
        if max_snaps < 1:
            raise InvalidArgument(f"max_snaps must be at least 1, not {max_snaps}", field="max_snaps")
        return cls(parsed, zone, max_snaps)

    def next_run(self, after: datetime) -> datetime:
        """The first run strictly after `after` (an aware datetime), in UTC."""
        if after.tzinfo is None or after.utcoffset() is None:
            raise InvalidArgument("next_run needs an aware datetime (with a time zone)", field="after")
        after_utc = after.astimezone(UTC)
        if self.schedule.interval_type is IntervalType.HOURLY:
            return self._next_hourly(after_utc)
        return self._next_daily_or_longer(after_utc)

    def _next_hourly(self, after: datetime) -> datetime:
        # Walk real minutes: offsets of 30 or 45 minutes and half-hour DST shifts need no special case.
        start = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
        for step in range(_MINUTES_TO_SEARCH):
            instant = start + timedelta(minutes=step)
            if instant.astimezone(self.time_zone).minute == self.schedule.minute:
                return instant
        raise AssertionError("every time zone reaches each minute of the hour within three hours")

    def _next_daily_or_longer(self, after: datetime) -> datetime:
        hour = self.schedule.hour if self.schedule.hour is not None else 0
        wall_time = time(hour, self.schedule.minute)
        # Start a day early: `after` in UTC may still be the previous day on the local clock.
        first_day = after.astimezone(self.time_zone).date() - timedelta(days=1)
        for offset in range(_DAYS_TO_SEARCH):
            day = first_day + timedelta(days=offset)
            if not self._runs_on(day):
                continue
            # fold=0: the first of a repeated time; a skipped time is read with the offset before the jump.
            instant = datetime.combine(day, wall_time, tzinfo=self.time_zone).astimezone(UTC)
            if instant > after:
                return instant
        raise AssertionError("every schedule has a run within two months")

    def _runs_on(self, day: date) -> bool:
        if self.schedule.interval_type is IntervalType.WEEKLY:
            return _cloudstack_day_of_week(day) == self.schedule.day
        if self.schedule.interval_type is IntervalType.MONTHLY:
            return day.day == self.schedule.day
        return True


def _cloudstack_day_of_week(day: date) -> int:
    """Java's Calendar numbering: 1 = Sunday ... 7 = Saturday (Python's isoweekday is 7 = Sunday)."""
    return day.isoweekday() % 7 + 1

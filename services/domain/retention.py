"""Which backups a prune keeps: keep-last, -hourly, -daily, -weekly, -monthly, -yearly, applied in that order, as
Proxmox Backup Server does it (and restic's `forget` much alike).

Backups are taken newest first. keep-last keeps the newest N. Each later rule then walks the backups not yet decided,
newest first, and keeps the newest backup of each of its N newest periods (hours, days, ISO weeks, months, years on
the schedule's clock in its time zone); a period that already holds a backup kept by an earlier rule does not count,
an older backup of a period it kept is removed, and a period with no backup counts for nothing. Whatever no rule
keeps is removed. Every backup is logically full, so removing any of them never breaks another.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID
from zoneinfo import ZoneInfo

from schemas.errors import InvalidArgument


@dataclass(frozen=True, slots=True)
class Keep:
    """How many of each to keep (0: the rule is off)."""

    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0

    def __post_init__(self) -> None:
        counts = (self.last, self.hourly, self.daily, self.weekly, self.monthly, self.yearly)
        if any(count < 0 for count in counts):
            raise InvalidArgument("keep counts must be 0 or more", field="keep")
        if not any(counts):
            raise InvalidArgument("give at least one --keep-* rule: a prune without one would remove everything")


@dataclass(frozen=True, slots=True)
class Decision:
    """One backup's fate and the rule that kept it (None: removed)."""

    backup_id: UUID
    created_at: datetime
    kept_by: str | None


_PERIODS: tuple[tuple[str, str], ...] = (
    ("hourly", "%Y-%m-%d %H"),
    ("daily", "%Y-%m-%d"),
    ("weekly", "%G-W%V"),  # ISO weeks: 2026-12-31 and 2027-01-01 are both in 2026-W53
    ("monthly", "%Y-%m"),
    ("yearly", "%Y"),
)


def plan_prune(backups: Sequence[tuple[UUID, datetime]], keep: Keep, time_zone: ZoneInfo) -> list[Decision]:
    """Decide every backup's fate, newest first."""
    ordered = sorted(backups, key=lambda item: (item[1], item[0]), reverse=True)
    kept: dict[UUID, str] = {}
    removed: set[UUID] = set()
    for backup_id, _ in ordered[: keep.last]:
        kept[backup_id] = "last"
    for rule, pattern in _PERIODS:
        count = getattr(keep, rule)
        if count:
            period_of = _on_clock(time_zone, pattern)
            _keep_periods(ordered, count=count, rule=rule, period_of=period_of, kept=kept, removed=removed)
    return [Decision(backup_id, at, kept.get(backup_id)) for backup_id, at in ordered]


def _on_clock(time_zone: ZoneInfo, pattern: str) -> Callable[[datetime], str]:
    """The period an instant falls in on the schedule's local clock."""

    def period_of(at: datetime) -> str:
        return at.astimezone(time_zone).strftime(pattern)

    return period_of


def _keep_periods(
    ordered: Sequence[tuple[UUID, datetime]],
    *,
    count: int,
    rule: str,
    period_of: Callable[[datetime], str],
    kept: dict[UUID, str],
    removed: set[UUID],
) -> None:
    already = {period_of(at) for backup_id, at in ordered if backup_id in kept}
    chosen: set[str] = set()
    for backup_id, at in ordered:
        if backup_id in kept or backup_id in removed:
            continue
        period = period_of(at)
        if period in already:
            continue
        if period in chosen:
            removed.add(backup_id)  # an older backup of a period this rule kept
            continue
        if len(chosen) >= count:
            break
        chosen.add(period)
        kept[backup_id] = rule

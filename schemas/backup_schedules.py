"""Messages of backup schedules: back a volume up on a schedule in CloudStack's formats, several per volume,
with `max_backups` and keep-* retention."""

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.envelope import Command, Event
from schemas.errors import ErrorInfo
from schemas.registry import message
from schemas.snapshot import IntervalType

# --------------------------------------------------------------------------------------------------- schedules


class KeepRules(BaseModel):
    """keep-last/-hourly/-daily/-weekly/-monthly/-yearly, applied in that order (Proxmox Backup Server's) on the
    schedule's clock; 0 turns a rule off."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    last: int = Field(default=0, ge=0, le=10000, description="Keep the newest N.")
    hourly: int = Field(default=0, ge=0, le=10000, description="Keep the newest backup of each of the last N hours.")
    daily: int = Field(default=0, ge=0, le=10000, description="...of each of the last N days.")
    weekly: int = Field(default=0, ge=0, le=10000, description="...of each of the last N ISO weeks.")
    monthly: int = Field(default=0, ge=0, le=10000, description="...of each of the last N months.")
    yearly: int = Field(default=0, ge=0, le=10000, description="...of each of the last N years.")

    @model_validator(mode="after")
    def _some_rule(self) -> "KeepRules":
        if not any((self.last, self.hourly, self.daily, self.weekly, self.monthly, self.yearly)):
            raise ValueError("give at least one keep rule above 0")
        return self


DEFAULT_MAX_BACKUPS = 7
"""The backups a schedule keeps when it is given neither `max_backups` nor keep-* rules."""


def max_backups_or_default(max_backups: int | None, keep: KeepRules | None) -> int:
    """`max_backups` as given; where it is not: `DEFAULT_MAX_BACKUPS` without keep-* rules, and with them 1, so that
    the rules alone decide (a backup goes once neither they nor max_backups keep it, and every rule keeps the newest
    backup): `--keep-last 3` keeps three, not the default seven."""
    if max_backups is not None:
        return max_backups
    return 1 if keep is not None else DEFAULT_MAX_BACKUPS


@message("backup_schedule.create")
class CreateBackupSchedule(Command):
    """Back a volume up on a schedule into a repository, keeping the newest `max_backups` of this schedule's backups.

    A volume may have several schedules (an hourly and a weekly one, say); each keeps its own backups.
    """

    schedule_id: UUID = Field(description="The caller's id for the schedule (the idempotency key).")
    volume_id: UUID
    repository_id: UUID
    interval_type: IntervalType
    schedule: str = Field(
        max_length=16,
        description="HOURLY `MM`; DAILY `MM:HH`; WEEKLY `MM:HH:D` (D 1-7, 1 = Sunday); MONTHLY `MM:HH:DD` "
        "(DD 1-28), as CloudStack writes it.",
    )
    timezone: str = Field(default="UTC", min_length=1, max_length=64, description="IANA time zone of the schedule.")
    max_backups: int = Field(ge=1, le=1000, description="How many of this schedule's backups to keep.")
    keep: KeepRules | None = Field(
        default=None,
        description="keep-* rules as well: a backup of the schedule goes once neither they nor max_backups keep it.",
    )


@message("backup_schedule.created")
class BackupScheduleCreated(Event):
    """A backup schedule is active; `next_run_at` is its first run (UTC)."""

    schedule_id: UUID
    volume_id: UUID
    repository_id: UUID
    interval_type: IntervalType
    schedule: str
    timezone: str
    max_backups: int = Field(ge=1)
    keep: KeepRules | None = None
    next_run_at: datetime


@message("backup_schedule.create.failed")
class BackupScheduleCreateFailed(Event):
    """A schedule was refused (a bad schedule or time zone, an unknown repository)."""

    schedule_id: UUID
    error: ErrorInfo


@message("backup_schedule.delete")
class DeleteBackupSchedule(Command):
    """Stop a schedule; the backups it took stay."""

    schedule_id: UUID


@message("backup_schedule.deleted")
class BackupScheduleDeleted(Event):
    """A schedule will not run again."""

    schedule_id: UUID


@message("backup_schedule.delete.failed")
class BackupScheduleDeleteFailed(Event):
    """A schedule could not be deleted."""

    schedule_id: UUID
    error: ErrorInfo

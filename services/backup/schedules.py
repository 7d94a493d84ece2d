"""Backup schedules: create (checked as CloudStack's snapshot policies are), delete, and their `max_backups`
retention (the oldest of a schedule's backups beyond it are deleted, each by a command of its own)."""

from datetime import datetime
from uuid import UUID

from bus.ports import UnitOfWork
from schemas import Envelope, Event
from schemas.backup import BackupState, DeleteBackup
from schemas.backup_schedules import (
    BackupScheduleCreated,
    BackupScheduleCreateFailed,
    BackupScheduleDeleted,
    BackupScheduleDeleteFailed,
    CreateBackupSchedule,
    DeleteBackupSchedule,
    KeepRules,
)
from schemas.errors import AlreadyExists, StrataError
from services.backup import repository as repo
from services.backup.deps import BackupDeps
from services.backup.requests import PRODUCER, Requester, answer, refusing
from services.domain.chains import retention_victims
from services.domain.policies import SnapshotPolicy, load_time_zone, parse_interval_type, parse_schedule
from services.domain.retention import Keep, plan_prune


def schedule_policy(interval_type: str, schedule: str, timezone: str, max_backups: int) -> SnapshotPolicy:
    """A schedule validated like a snapshot policy (the same formats); a bad part raises naming its field."""
    return SnapshotPolicy(
        parse_schedule(parse_interval_type(interval_type), schedule), load_time_zone(timezone), max_backups
    )


async def create_schedule(command: CreateBackupSchedule, envelope: Envelope, uow: UnitOfWork, deps: BackupDeps) -> None:
    """Record a schedule with its first run; another schedule of the same volume is left as it is."""

    def failed(error: StrataError) -> Event:
        return BackupScheduleCreateFailed(schedule_id=command.schedule_id, error=error.info())

    async def body() -> None:
        connection = uow.connection
        policy = schedule_policy(command.interval_type.value, command.schedule, command.timezone, command.max_backups)
        existing = await connection.fetchrow(
            "SELECT volume_id, repository_id, next_run_at FROM backup.schedules WHERE schedule_id = $1",
            command.schedule_id,
        )
        if existing is not None:
            if (existing["volume_id"], existing["repository_id"]) != (command.volume_id, command.repository_id):
                raise AlreadyExists(f"schedule {command.schedule_id} exists for another volume", field="schedule_id")
            next_run_at: datetime = existing["next_run_at"]
        else:
            await repo.get_repository(connection, command.repository_id)
            now = deps.clock()
            next_run_at = policy.next_run(now)
            await connection.execute(
                "INSERT INTO backup.schedules (schedule_id, volume_id, repository_id, interval_type, schedule, "
                "timezone, max_backups, next_run_at, created_at, keep) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb)",
                command.schedule_id,
                command.volume_id,
                command.repository_id,
                command.interval_type.value,
                command.schedule,
                command.timezone,
                command.max_backups,
                next_run_at,
                now,
                command.keep.model_dump_json() if command.keep else None,
            )
        created = BackupScheduleCreated(
            schedule_id=command.schedule_id,
            volume_id=command.volume_id,
            repository_id=command.repository_id,
            interval_type=command.interval_type,
            schedule=command.schedule,
            timezone=command.timezone,
            max_backups=command.max_backups,
            keep=command.keep,
            next_run_at=next_run_at,
        )
        answer(uow, Requester.of(envelope), created)

    await refusing(uow, envelope, failed, body)


async def delete_schedule(command: DeleteBackupSchedule, envelope: Envelope, uow: UnitOfWork, deps: BackupDeps) -> None:
    """Forget a schedule (one already gone counts as deleted); its backups stay."""

    def failed(error: StrataError) -> Event:
        return BackupScheduleDeleteFailed(schedule_id=command.schedule_id, error=error.info())

    async def body() -> None:
        await uow.connection.execute("DELETE FROM backup.schedules WHERE schedule_id = $1", command.schedule_id)
        answer(uow, Requester.of(envelope), BackupScheduleDeleted(schedule_id=command.schedule_id))

    await refusing(uow, envelope, failed, body)


async def apply_retention(uow: UnitOfWork, requester: Requester, backup_id: UUID) -> None:
    """After a scheduled backup: delete the schedule's BackedUp backups that neither its `max_backups` (the newest
    so many) nor its keep-* rules (on the schedule's clock) keep."""
    row = await uow.connection.fetchrow(
        "SELECT s.schedule_id, s.max_backups, s.keep::text AS keep, s.timezone FROM backup.backups b "
        "JOIN backup.schedules s USING (schedule_id) WHERE b.backup_id = $1",
        backup_id,
    )
    if row is None:
        return  # not a scheduled backup, or its schedule was deleted: nothing is pruned
    kept = await uow.connection.fetch(
        "SELECT backup_id, created_at FROM backup.backups WHERE schedule_id = $1 AND state = $2",
        row["schedule_id"],
        BackupState.BACKED_UP.value,
    )
    backups = [(each["backup_id"], each["created_at"]) for each in kept]
    victims = retention_victims(backups, row["max_backups"])
    if row["keep"] is not None:
        rules = KeepRules.model_validate_json(row["keep"])
        keep = Keep(rules.last, rules.hourly, rules.daily, rules.weekly, rules.monthly, rules.yearly)
        dropped = {d.backup_id for d in plan_prune(backups, keep, load_time_zone(row["timezone"])) if not d.kept_by}
        victims = [victim for victim in victims if victim in dropped]
    for victim in victims:
        uow.emit(
            Envelope.wrap(DeleteBackup(backup_id=victim), correlation_id=requester.correlation_id, producer=PRODUCER)
        )

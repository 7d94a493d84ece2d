"""`strata backup-schedule`: back volumes up on schedules in CloudStack's formats (several per volume), each keeping
its newest `--max-backups`. `list` reads the backup service's tables (STRATA_DATABASE_URL)."""

import uuid
from typing import TYPE_CHECKING, Annotated, Any

import typer

from services.cli.backup_prune import KeepOption
from services.cli.backup_repo import find_repository
from services.cli.talking import (
    JsonOption,
    TimeoutOption,
    console,
    invalid,
    listing,
    parse_uuid,
    print_json,
    read,
    talk,
)

if TYPE_CHECKING:  # the bus is imported when a command runs, so that `strata --help` stays fast
    from schemas.backup_schedules import KeepRules
    from services.cli.sending import Client

app = typer.Typer(help="Scheduled backups and their retention.", no_args_is_help=True)


@app.command("create")
def create(  # noqa: PLR0917  # typer makes each parameter an option or argument
    volume: Annotated[str, typer.Argument(help="The volume's id or name.")],
    repository: Annotated[str, typer.Option("--repo", help="The backup repository (id or name).")],
    interval: Annotated[str, typer.Option(help="HOURLY, DAILY, WEEKLY or MONTHLY.")],
    schedule: Annotated[str, typer.Option(help="MM, MM:HH, MM:HH:D (1 = Sunday) or MM:HH:DD, as CloudStack.")],
    timezone: Annotated[str, typer.Option(help="IANA time zone of the schedule.")] = "UTC",
    max_backups: Annotated[int, typer.Option(min=1, max=1000, help="How many of its backups to keep.")] = 7,
    keep_last: KeepOption = 0,
    keep_hourly: KeepOption = 0,
    keep_daily: KeepOption = 0,
    keep_weekly: KeepOption = 0,
    keep_monthly: KeepOption = 0,
    keep_yearly: KeepOption = 0,
    as_json: JsonOption = False,
    timeout: TimeoutOption = 60.0,
) -> None:
    """Add a schedule to a volume (its other schedules stay); checked before anything is sent. With --keep-* rules
    (Proxmox Backup Server's), a backup of the schedule goes once neither they nor --max-backups keep it.

    Example: strata backup-schedule create data-1 --repo nfs --interval DAILY --schedule 30:02 --keep-daily 7
    --keep-weekly 4
    """
    from schemas import StrataError
    from schemas.backup_schedules import (
        BackupScheduleCreated,
        BackupScheduleCreateFailed,
        CreateBackupSchedule,
        KeepRules,
    )
    from services.backup.schedules import schedule_policy
    from services.cli.talking import fail
    from services.cli.volume import find_volume

    repository_id = uuid.UUID(find_repository(repository)["repository_id"])
    try:
        schedule_policy(interval.upper(), schedule, timezone, max_backups)
    except StrataError as error:
        fail(error)

    counts = (keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly)
    names = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
    rules = KeepRules(**dict(zip(names, counts, strict=True))) if any(counts) else None

    async def work(client: "Client") -> BackupScheduleCreated:
        info = await find_volume(client, volume, timeout=timeout)
        try:
            command = CreateBackupSchedule(
                schedule_id=uuid.uuid4(),
                volume_id=info.volume_id,
                repository_id=repository_id,
                interval_type=interval.upper(),  # type: ignore[arg-type]  # pydantic reads the enum's value
                schedule=schedule,
                timezone=timezone,
                max_backups=max_backups,
                keep=rules,
            )
        except ValueError as error:
            raise invalid(error) from None
        created = await client.send(command, (BackupScheduleCreated,), (BackupScheduleCreateFailed,), timeout=timeout)
        assert isinstance(created, BackupScheduleCreated)
        return created

    created = talk(work)
    if as_json:
        print_json(created)
        return
    console.print(
        f"backup schedule {created.schedule_id}: {created.interval_type.value} {created.schedule} "
        f"({created.timezone}), keeps {created.max_backups}{_rules(created.keep)}; "
        f"first run {created.next_run_at.isoformat()}"
    )


@app.command("list")
def list_schedules(
    volume: Annotated[str | None, typer.Option(help="Only the schedules of this volume (UUID).")] = None,
    as_json: JsonOption = False,
) -> None:
    """List the backup schedules."""
    from schemas.backup_schedules import KeepRules

    volume_id = parse_uuid(volume, "--volume") if volume else None

    async def work(connection: Any) -> list[dict[str, Any]]:  # asyncpg connection; JSON rows
        rows = await connection.fetch(
            "SELECT schedule_id, volume_id, repository_id, interval_type, schedule, timezone, max_backups, "
            "keep::text AS keep, next_run_at, last_run_at FROM backup.schedules "
            "WHERE $1::uuid IS NULL OR volume_id = $1 ORDER BY next_run_at",
            volume_id,
        )
        return [
            {
                key: (
                    value.isoformat()
                    if hasattr(value, "isoformat")
                    else str(value)
                    if isinstance(value, uuid.UUID)
                    else value
                )
                for key, value in dict(row).items()
            }
            for row in rows
        ]

    rows = read(work)
    if as_json:
        print_json({"schedules": rows})
        return
    table = listing("id", "volume", "interval", "schedule", "timezone", "keep", "next run")
    for row in rows:
        table.add_row(
            row["schedule_id"],
            row["volume_id"],
            row["interval_type"],
            row["schedule"],
            row["timezone"],
            str(row["max_backups"]) + (_rules(KeepRules.model_validate_json(row["keep"])) if row["keep"] else ""),
            row["next_run_at"][:19],
        )
    console.print(table)


@app.command("delete")
def delete(
    schedule: Annotated[str, typer.Argument(help="The schedule's id.")],
    as_json: JsonOption = False,
    timeout: TimeoutOption = 60.0,
) -> None:
    """Stop a schedule; the backups it took stay."""
    from schemas.backup_schedules import BackupScheduleDeleted, BackupScheduleDeleteFailed, DeleteBackupSchedule

    schedule_id = parse_uuid(schedule, "SCHEDULE")

    async def work(client: "Client") -> BackupScheduleDeleted:
        deleted = await client.send(
            DeleteBackupSchedule(schedule_id=schedule_id),
            (BackupScheduleDeleted,),
            (BackupScheduleDeleteFailed,),
            timeout=timeout,
        )
        assert isinstance(deleted, BackupScheduleDeleted)
        return deleted

    deleted = talk(work)
    if as_json:
        print_json(deleted)
        return
    console.print(f"backup schedule {deleted.schedule_id} deleted")


def _rules(keep: "KeepRules | None") -> str:
    """`, keep-daily 7, keep-weekly 4` (the rules that are on), or nothing."""
    if keep is None:
        return ""
    return "".join(f", keep-{rule} {count}" for rule, count in keep.model_dump().items() if count)

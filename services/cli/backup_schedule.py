"""`strata backup-schedule`: back volumes up on schedules in CloudStack's formats (several per volume), each keeping
its newest `--max-backups`. `list` reads the backup service's tables (STRATA_DATABASE_URL)."""

import uuid
from typing import TYPE_CHECKING, Annotated, Any

import typer

from services.cli.backup_prune import KeepOption
from services.cli.backup_repo import repository_in_zone
from services.cli.backup_schedule_rows import schedule_rows
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
from services.cli.volume import volume_id_of, volume_names

if TYPE_CHECKING:  # the bus is imported when a command runs, so that `strata --help` stays fast
    from schemas.backup_schedules import KeepRules
    from schemas.storage_queries import VolumeInfo
    from services.cli.sending import Client

app = typer.Typer(help="Scheduled backups and their retention.", no_args_is_help=True)


@app.command("create")
def create(  # noqa: PLR0917  # typer makes each parameter an option or argument
    volume: Annotated[str, typer.Argument(help="The volume's id or name.")],
    interval: Annotated[str, typer.Option(help="HOURLY, DAILY, WEEKLY or MONTHLY.")],
    schedule: Annotated[str, typer.Option(help="MM, MM:HH, MM:HH:D (1 = Sunday) or MM:HH:DD, as CloudStack.")],
    repository: Annotated[
        str | None,
        typer.Option("--repo", help="The backup repository (id or name); by default the one of the volume's zone."),
    ] = None,
    timezone: Annotated[str, typer.Option(help="IANA time zone of the schedule.")] = "UTC",
    max_backups: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=1000,
            help="How many of its newest backups to keep; by default 7 without --keep-* rules, and with them the "
            "rules alone decide.",
            show_default=False,
        ),
    ] = None,
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

    Example: strata backup-schedule create data-1 --interval DAILY --schedule 30:02 --keep-daily 7 --keep-weekly 4
    """
    from schemas import StrataError
    from schemas.backup_schedules import (
        BackupScheduleCreated,
        BackupScheduleCreateFailed,
        CreateBackupSchedule,
        KeepRules,
        max_backups_or_default,
    )
    from services.backup.schedules import schedule_policy
    from services.cli.talking import fail
    from services.cli.volume import find_volume

    counts = (keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly)
    names = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
    rules = KeepRules(**dict(zip(names, counts, strict=True))) if any(counts) else None
    kept = max_backups_or_default(max_backups, rules)
    try:
        schedule_policy(interval.upper(), schedule, timezone, kept)
    except StrataError as error:
        fail(error)

    async def the_volume(client: "Client") -> "VolumeInfo":
        return await find_volume(client, volume, timeout=min(timeout, 15.0))

    info = talk(the_volume)
    found = repository_in_zone(repository, info.zone_id)
    repository_id = uuid.UUID(found["repository_id"])

    async def work(client: "Client") -> BackupScheduleCreated:
        try:
            command = CreateBackupSchedule(
                schedule_id=uuid.uuid4(),
                volume_id=info.volume_id,
                repository_id=repository_id,
                interval_type=interval.upper(),  # type: ignore[arg-type]  # pydantic reads the enum's value
                schedule=schedule,
                timezone=timezone,
                max_backups=kept,
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
        f"backup schedule {created.schedule_id} of volume {info.name} into repository {found['name']}: "
        f"{created.interval_type.value} {created.schedule} ({created.timezone}), "
        f"{_keeps(created.max_backups, created.keep)}; first run {created.next_run_at.isoformat()}"
    )


@app.command("list")
def list_schedules(
    volume: Annotated[str | None, typer.Option(help="Only the schedules of this volume (id or name).")] = None,
    as_json: JsonOption = False,
    timeout: TimeoutOption = 15.0,
) -> None:
    """List the backup schedules, the next to run first."""
    from schemas.backup_schedules import KeepRules

    volume_id = volume_id_of(volume, timeout=timeout) if volume else None

    async def work(connection: Any) -> list[dict[str, Any]]:  # asyncpg connection; JSON rows
        return await schedule_rows(connection, volume_id)

    rows = read(work)
    if as_json:
        print_json({"schedules": rows})
        return
    table = listing("id", "volume", "interval", "schedule", "timezone", "keep", "next run")
    names = volume_names() if rows else {}
    for row in rows:
        table.add_row(
            row["schedule_id"],
            names.get(row["volume_id"], row["volume_id"]),
            row["interval_type"],
            row["schedule"],
            row["timezone"],
            _keeps(row["max_backups"], KeepRules.model_validate_json(row["keep"]) if row["keep"] else None),
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


def _keeps(max_backups: int, keep: "KeepRules | None") -> str:
    """What a schedule keeps: `keeps the newest 7`, `keeps by keep-daily 7, keep-weekly 4` (where the rules alone
    decide: max_backups 1, the newest, which every rule keeps), or both."""
    if keep is None:
        return f"keeps the newest {max_backups}"
    rules = ", ".join(f"keep-{rule} {count}" for rule, count in keep.model_dump().items() if count)
    return f"keeps by {rules}" if max_backups == 1 else f"keeps the newest {max_backups} and by {rules}"

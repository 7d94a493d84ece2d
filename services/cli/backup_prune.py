"""`strata backup prune`: keep-last/-hourly/-daily/-weekly/-monthly/-yearly over a volume's backups, with a dry run.

The backups are read from the backup service's tables (STRATA_DATABASE_URL); only BackedUp ones take part (a backup
being taken or restored is never pruned). Each backup to go is deleted by its own `backup.delete` command.
"""

import uuid
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from services.cli.backup_repo import find_repository
from services.cli.talking import JsonOption, TimeoutOption, console, errors, fail, print_json, read, talk
from services.cli.volume import volume_id_of

if TYPE_CHECKING:  # the bus is imported when a command runs, so that `strata --help` stays fast
    from services.cli.sending import Client

KeepOption = Annotated[int, typer.Option(min=0, max=100000, help="Keep the newest of each of the N newest periods.")]


def prune(  # noqa: PLR0917  # typer makes each parameter an option or argument
    volume: Annotated[str, typer.Option(help="The volume (id or name) whose backups are pruned.")],
    repository: Annotated[str | None, typer.Option("--repo", help="Only its backups in this repository.")] = None,
    keep_last: Annotated[int, typer.Option(min=0, help="Keep the newest N.")] = 0,
    keep_hourly: KeepOption = 0,
    keep_daily: KeepOption = 0,
    keep_weekly: KeepOption = 0,
    keep_monthly: KeepOption = 0,
    keep_yearly: KeepOption = 0,
    timezone: Annotated[str, typer.Option(help="The clock periods are counted on (IANA name).")] = "UTC",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would go.")] = False,
    as_json: JsonOption = False,
    timeout: TimeoutOption = 600.0,
) -> None:
    """Remove the backups no keep rule keeps (applied in PBS's order: last, hourly, daily, weekly, monthly, yearly)."""
    from schemas import StrataError
    from services.domain.policies import load_time_zone
    from services.domain.retention import Keep, plan_prune

    volume_id = volume_id_of(volume, timeout=min(timeout, 15.0))
    repository_id = uuid.UUID(find_repository(repository)["repository_id"]) if repository else None
    try:
        keep = Keep(keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly)
        zone = load_time_zone(timezone)
    except StrataError as error:
        fail(error)

    decisions = plan_prune(read(lambda connection: backed_up(connection, volume_id, repository_id)), keep, zone)
    victims = [decision.backup_id for decision in decisions if decision.kept_by is None]
    if not dry_run and victims:
        talk(lambda client: _delete_all(client, victims, timeout))
    rows: list[dict[str, str | None]] = [
        {"backup_id": str(d.backup_id), "created_at": d.created_at.isoformat(), "kept_by": d.kept_by} for d in decisions
    ]
    if as_json:
        print_json({"dry_run": dry_run, "backups": rows})
        return
    table = Table(box=None, header_style="bold")
    for column in ("backup", "created", "decision"):
        table.add_column(column)
    for row in rows:
        fate = f"keep ({row['kept_by']})" if row["kept_by"] else ("would remove" if dry_run else "removed")
        table.add_row(row["backup_id"], str(row["created_at"])[:19], fate)
    console.print(table)
    console.print(f"{len(victims)} of {len(rows)} backups {'would go' if dry_run else 'removed'}")


async def backed_up(
    connection: Any, volume_id: uuid.UUID, repository_id: uuid.UUID | None
) -> list[tuple[uuid.UUID, Any]]:  # asyncpg connection; (id, created_at)
    """The volume's BackedUp backups (in one repository, or all), what a prune decides over."""
    rows = await connection.fetch(
        "SELECT backup_id, created_at FROM backup.backups WHERE volume_id = $1 AND state = 'BackedUp' "
        "AND ($2::uuid IS NULL OR repository_id = $2)",
        volume_id,
        repository_id,
    )
    return [(row["backup_id"], row["created_at"]) for row in rows]


async def _delete_all(client: "Client", victims: list[uuid.UUID], timeout: float) -> None:
    from schemas.backup import BackupDeleted, BackupDeleteFailed, DeleteBackup

    for backup_id in victims:
        with errors.status(f"deleting backup {backup_id} ..."):
            await client.send(
                DeleteBackup(backup_id=backup_id), (BackupDeleted,), (BackupDeleteFailed,), timeout=timeout
            )

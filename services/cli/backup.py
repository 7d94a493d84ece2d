"""`strata backup`: create, list, show, restore, delete and verify backups (the backup service and its sagas).

A finished backup says what it read, wrote and reused ("reused 4.4 GiB (88%)"), and whether it read only the
changed blocks. Listings read the backup service's tables (STRATA_DATABASE_URL).
"""

import uuid
from typing import TYPE_CHECKING, Annotated, Any

import typer

from services.cli.backup_repo import repository_in_zone
from services.cli.talking import (
    JsonOption,
    TimeoutOption,
    console,
    errors,
    fail,
    human_bytes,
    invalid,
    listing,
    parse_uuid,
    print_json,
    read,
    talk,
    zone_id,
)
from services.cli.volume import volume_id_of, volume_names

if TYPE_CHECKING:  # messages and the bus are imported when a command runs, so that `strata --help` stays fast
    from rich.progress import Progress

    from schemas import Event, Message
    from schemas.backup import BackupCreated
    from schemas.storage_queries import VolumeInfo
    from services.cli.sending import Client

app = typer.Typer(help="Backups of volumes and snapshots, restores and verifies.", no_args_is_help=True)
BackupArgument = Annotated[str, typer.Argument(help="The backup's id.")]
_COLUMNS = (
    "backup_id, repository_id, volume_id, snapshot_id, kind, parent_id, state, size_bytes, bytes_read, "
    "bytes_written, bytes_reused, changed_blocks, note, error, verify_bad, verified_at, created_at, finished_at"
)


def _progress() -> "Progress":
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=errors)


def _bytes_progress() -> "Progress":
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn, TransferSpeedColumn

    columns = (BarColumn(), DownloadColumn(binary_units=True), TransferSpeedColumn(), TimeElapsedColumn())
    return Progress(TextColumn("{task.description}"), *columns, console=errors, transient=True)


async def _with_bar(
    client: "Client",
    command: "Message",
    outcomes: tuple[type["Event"], type["Event"]],
    *,
    description: str,
    total: int | None,
    timeout: float,
) -> "Event":
    """Send `command` and wait for its outcome (`outcomes`: success, failure) with a bar of the bytes the agent
    reports it has gone through (read, restored or checked: `backup.progressed` of the operation)."""
    from schemas.backup import BackupProgressed
    from services.cli.following import following

    envelope = await client.publish(command)
    with _bytes_progress() as progress:
        task = progress.add_task(description, total=total)

        def moved(event: BackupProgressed) -> None:
            progress.update(task, completed=event.done_bytes, total=event.total_bytes)

        async with following(client, envelope.correlation_id, BackupProgressed, moved):
            outcome = await client.outcome(envelope, (outcomes[0],), (outcomes[1],), timeout=timeout)
        progress.update(task, completed=progress.tasks[0].total or 0)
    return outcome


def reuse_line(created: "BackupCreated") -> str:
    """What a backup cost, as Proxmox Backup Server says it: read, written, and the share of data reused."""
    data = created.bytes_reused + max(0, created.bytes_read - created.bytes_reused)
    stored = created.bytes_reused + created.bytes_written
    share = created.bytes_reused * 100 // stored if stored else 0
    how = "changed blocks only" if created.changed_blocks else (created.note or "everything read")
    return (
        f"read {human_bytes(created.bytes_read)} ({how}), wrote {human_bytes(created.bytes_written)}, "
        f"reused {human_bytes(created.bytes_reused)} ({share}%) of {human_bytes(max(data, created.size_bytes))}"
    )


@app.command("create")
def create(  # noqa: PLR0917  # typer makes each parameter an option or argument
    volume: Annotated[str, typer.Argument(help="The volume's id or name.")],
    repository: Annotated[
        str | None,
        typer.Option("--repo", help="The backup repository (id or name); by default the one of the volume's zone."),
    ] = None,
    snapshot: Annotated[
        str | None, typer.Option(help="Back up this snapshot (its id or name) instead of a new one.")
    ] = None,
    keep_snapshot: Annotated[
        bool,
        typer.Option(
            help="Keep the snapshot the backup takes; without it, the snapshot goes once a newer backup of the volume "
            "succeeds (until then it lets that backup read only what changed)."
        ),
    ] = False,
    as_json: JsonOption = False,
    timeout: TimeoutOption = 3600.0,
) -> None:
    """Back up a volume (through a new snapshot) or one of its snapshots; full or incremental as the service decides.

    Example: strata backup create data-1 --snapshot before-upgrade
    """
    from schemas.backup import BackupCreated, BackupCreateFailed, CreateBackup
    from services.cli.snapshot_names import snapshot_id_of
    from services.cli.volume import find_volume

    async def the_volume(client: "Client") -> "VolumeInfo":
        return await find_volume(client, volume, timeout=min(timeout, 15.0))

    info = talk(the_volume)
    found = repository_in_zone(repository, info.zone_id)
    repository_id = uuid.UUID(found["repository_id"])
    snapshot_id = snapshot_id_of(snapshot) if snapshot else None

    async def work(client: "Client") -> BackupCreated:
        command = CreateBackup(
            backup_id=uuid.uuid4(),
            volume_id=info.volume_id,
            repository_id=repository_id,
            snapshot_id=snapshot_id,
            keep_snapshot=keep_snapshot,
        )
        created = await _with_bar(
            client,
            command,
            (BackupCreated, BackupCreateFailed),
            description=f"backing up {info.name}",
            total=info.size_bytes,
            timeout=timeout,
        )
        assert isinstance(created, BackupCreated)
        return created

    created = talk(work)
    if as_json:
        print_json(created)
        return
    console.print(
        f"backup {created.backup_id} ({created.kind.value}) of volume {info.name} in repository {found['name']} "
        "is BackedUp"
    )
    console.print("  " + reuse_line(created))


async def _rows(connection: Any, *, volume_id: uuid.UUID | None, backup_id: uuid.UUID | None, everything: bool) -> Any:
    conditions, args = [], []  # Any above: asyncpg connection and records
    if volume_id is not None:
        args.append(volume_id)
        conditions.append(f"volume_id = ${len(args)}")
    if backup_id is not None:
        args.append(backup_id)
        conditions.append(f"backup_id = ${len(args)}")
    if not everything:
        conditions.append("state <> 'Removed'")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return await connection.fetch(f"SELECT {_COLUMNS} FROM backup.backups{where} ORDER BY created_at DESC", *args)


def _json(row: Any) -> dict[str, Any]:  # an asyncpg Record of _COLUMNS -> JSON values
    return {
        key: (
            str(value) if isinstance(value, uuid.UUID) else value.isoformat() if hasattr(value, "isoformat") else value
        )
        for key, value in dict(row).items()
    }


@app.command("list")
def list_backups(
    volume: Annotated[str | None, typer.Option(help="Only the backups of this volume (id or name).")] = None,
    everything: Annotated[bool, typer.Option("--all", help="Include removed backups.")] = False,
    as_json: JsonOption = False,
) -> None:
    """List backups, newest first."""
    volume_id = volume_id_of(volume) if volume else None

    async def work(connection: Any) -> list[dict[str, Any]]:  # asyncpg connection; JSON rows
        return [
            _json(row) for row in await _rows(connection, volume_id=volume_id, backup_id=None, everything=everything)
        ]

    rows = read(work)
    if as_json:
        print_json({"backups": rows})
        return
    table = listing("id", "volume", "kind", "state", "size", "read", "written", "reused", "verify", "created")
    names = volume_names() if rows else {}
    for row in rows:
        verify = (
            "-" if row["verify_bad"] is None else ("ok" if not row["verify_bad"] else f"{len(row['verify_bad'])} bad")
        )
        table.add_row(
            row["backup_id"],
            names.get(row["volume_id"], row["volume_id"]),
            row["kind"] + (" (cbt)" if row["changed_blocks"] else ""),
            row["state"],
            human_bytes(row["size_bytes"]),
            human_bytes(row["bytes_read"]),
            human_bytes(row["bytes_written"]),
            human_bytes(row["bytes_reused"]),
            verify,
            row["created_at"][:19],
        )
    console.print(table)


@app.command("show")
def show(backup: BackupArgument, as_json: JsonOption = False) -> None:
    """Show one backup: its lineage, what it cost, how it read, its last verify."""
    backup_id = parse_uuid(backup, "BACKUP")

    async def work(connection: Any) -> list[dict[str, Any]]:  # asyncpg connection; JSON rows
        return [_json(row) for row in await _rows(connection, volume_id=None, backup_id=backup_id, everything=True)]

    rows = read(work)
    if not rows:
        from schemas.errors import NotFound

        fail(NotFound(f"no backup {backup_id} (see `strata backup list`)", field="backup"))
    if as_json:
        print_json(rows[0])
        return
    for key, value in rows[0].items():
        console.print(f"[bold]{key}[/bold]: {value}")


@app.command("restore")
def restore(  # noqa: PLR0917  # typer makes each parameter an option or argument
    backup: BackupArgument,
    name: Annotated[str | None, typer.Option(help="Restore to a new volume of this name.")] = None,
    pool: Annotated[
        str | None, typer.Option(help="The new volume's pool (id or name; default: the allocator's).")
    ] = None,
    zone: Annotated[str | None, typer.Option(help="The new volume's zone (default: the repository's).")] = None,
    in_place: Annotated[
        str | None, typer.Option("--in-place", help="Overwrite this volume (id or name); VM stopped.")
    ] = None,
    vm: Annotated[str | None, typer.Option(help="The volume's VM (UUID), checked to be stopped.")] = None,
    host: Annotated[str | None, typer.Option(help="The host of the VM (or for the new volume).")] = None,
    cluster: Annotated[str | None, typer.Option(help="The cluster for the new volume.")] = None,
    as_json: JsonOption = False,
    timeout: TimeoutOption = 3600.0,
) -> None:
    """Restore a backup to a new volume or in place; the data are checked against the backup's hashes first."""
    from schemas.backup_restores import BackupRestored, BackupRestoreFailed, RestoreBackup
    from services.cli.pool import find_pool

    backup_id = parse_uuid(backup, "BACKUP")
    if (name is None) == (in_place is None):
        fail(invalid(ValueError("give either --name (a new volume) or --in-place VOLUME")))
    target_zone = zone_id(zone) if zone else _repository_zone(backup_id)
    overwritten = volume_id_of(in_place, timeout=min(timeout, 15.0)) if in_place else None

    async def work(client: "Client") -> BackupRestored:
        pool_id = (await find_pool(client, pool, timeout=timeout)).pool_id if pool else None
        try:
            command = RestoreBackup(
                restore_id=uuid.uuid4(),
                backup_id=backup_id,
                volume_id=overwritten or uuid.uuid4(),
                in_place=in_place is not None,
                name=name,
                zone_id=target_zone if in_place is None else None,
                pool_id=pool_id,
                host=host,
                cluster_id=cluster,
                vm_id=parse_uuid(vm, "--vm") if vm else None,
            )
        except ValueError as error:
            raise invalid(error) from None
        restored = await _with_bar(
            client,
            command,
            (BackupRestored, BackupRestoreFailed),
            description=f"restoring backup {str(backup_id)[:8]} (every chunk checked)",
            total=None,
            timeout=timeout,
        )
        assert isinstance(restored, BackupRestored)
        return restored

    restored = talk(work)
    if as_json:
        print_json(restored)
        return
    where = "in place" if restored.in_place else "to a new volume"
    console.print(f"backup {restored.backup_id} restored {where}: volume {restored.volume_id} (checked) is Ready")


def _repository_zone(backup_id: uuid.UUID) -> uuid.UUID:
    """The zone of the repository that holds the backup."""

    async def work(connection: Any) -> Any:  # asyncpg connection; the zone's UUID or None
        return await connection.fetchval(
            "SELECT r.zone_id FROM backup.backups b JOIN backup.repositories r USING (repository_id) "
            "WHERE b.backup_id = $1",
            backup_id,
        )

    found = read(work)
    if found is None:
        from schemas.errors import NotFound

        fail(NotFound(f"no backup {backup_id} (see `strata backup list`)", field="backup"))
    return uuid.UUID(str(found))


@app.command("delete")
def delete(backup: BackupArgument, as_json: JsonOption = False, timeout: TimeoutOption = 600.0) -> None:
    """Delete a backup; no other backup depends on it (each is logically full)."""
    from schemas.backup import BackupDeleted, BackupDeleteFailed, DeleteBackup

    backup_id = parse_uuid(backup, "BACKUP")

    async def work(client: "Client") -> BackupDeleted:
        with errors.status(f"deleting backup {backup_id} ..."):
            deleted = await client.send(
                DeleteBackup(backup_id=backup_id), (BackupDeleted,), (BackupDeleteFailed,), timeout=timeout
            )
        assert isinstance(deleted, BackupDeleted)
        return deleted

    deleted = talk(work)
    if as_json:
        print_json(deleted)
        return
    console.print(f"backup {deleted.backup_id} removed")


@app.command("verify")
def verify(backup: BackupArgument, as_json: JsonOption = False, timeout: TimeoutOption = 3600.0) -> None:
    """Re-read every chunk of a backup and check its hash; exit 1 if any is bad (the backup is then refused)."""
    from schemas.backup import BackupVerified, BackupVerifyFailed, VerifyBackup

    backup_id = parse_uuid(backup, "BACKUP")

    async def work(client: "Client") -> BackupVerified:
        verified = await _with_bar(
            client,
            VerifyBackup(backup_id=backup_id),
            (BackupVerified, BackupVerifyFailed),
            description=f"verifying backup {str(backup_id)[:8]}",
            total=None,
            timeout=timeout,
        )
        assert isinstance(verified, BackupVerified)
        return verified

    verified = talk(work)
    if as_json:
        print_json(verified)
    else:
        console.print(
            f"backup {verified.backup_id}: {verified.chunks} chunks, {human_bytes(verified.bytes_checked)} checked, "
            + ("all sound" if not verified.bad else f"{len(verified.bad)} bad")
        )
        for bad in verified.bad:
            console.print(f"  [red]bad[/red] {bad}")
    if verified.bad:
        raise typer.Exit(1)

"""`strata snapshot`: create, list, delete and revert volume snapshots (the snapshot service runs them).

`list` reads the snapshot service's tables (STRATA_DATABASE_URL) read-only: the service answers no list query yet.
"""

import uuid
from typing import TYPE_CHECKING, Annotated, Any

import typer

from schemas.errors import StrataError
from services.cli.snapshot_names import snapshot_id_of
from services.cli.talking import (
    JsonOption,
    TimeoutOption,
    as_given,
    console,
    errors,
    human_bytes,
    invalid,
    listing,
    print_json,
    read,
    talk,
)
from services.cli.volume import find_volume, volume_id_of, volume_names

if TYPE_CHECKING:  # messages and the bus are imported when a command runs, so that `strata --help` stays fast
    from rich.progress import Progress

    from services.cli.sending import Client

app = typer.Typer(help="Volume snapshots.", no_args_is_help=True)
SnapshotArgument = Annotated[str, typer.Argument(help="The snapshot's id, or its name (`strata snapshot list`).")]


def _progress() -> "Progress":
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=errors)


@app.command("create")
def create(
    volume: Annotated[str, typer.Argument(help="The volume's id or name.")],
    name: Annotated[str | None, typer.Option(help="The snapshot's name (default: volume name + time).")] = None,
    as_json: JsonOption = False,
    timeout: TimeoutOption = 300.0,
) -> None:
    """Snapshot a volume (full or delta, as the chain rules and snapshot.delta.max decide)."""
    from schemas.snapshot import CreateSnapshot, SnapshotCreated, SnapshotCreateFailed

    async def work(client: "Client") -> tuple[SnapshotCreated, str]:
        info = await find_volume(client, volume, timeout=timeout)
        try:
            command = CreateSnapshot(
                snapshot_id=uuid.uuid4(), volume_id=info.volume_id, name=name or f"{info.name}-{uuid.uuid4().hex[:8]}"
            )
        except ValueError as error:
            raise invalid(error) from None
        with _progress() as progress:
            progress.add_task(f"snapshotting {info.name}", total=None)
            created = await client.send(command, (SnapshotCreated,), (SnapshotCreateFailed,), timeout=timeout)
        assert isinstance(created, SnapshotCreated)
        return created, command.name

    created, chosen = talk(work)
    if as_json:
        print_json(created)
        return
    console.print(
        f"snapshot {chosen} {created.snapshot_id} ({created.kind.value}) of volume {volume}: "
        f"{human_bytes(created.physical_size_bytes)} on the pool"
    )


@app.command("list")
def list_snapshots(
    volume: Annotated[str | None, typer.Option(help="Only the snapshots of this volume (id or name).")] = None,
    include_destroyed: Annotated[bool, typer.Option("--all", help="Include destroyed snapshots.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=10000, help="At most this many, newest first.")] = 100,
    as_json: JsonOption = False,
    timeout: TimeoutOption = 15.0,
) -> None:
    """List snapshots, newest first, with their volumes' names (the storage service's, where it answers).

    Example: strata snapshot list --volume data-1
    """
    from services.snapshot.repository import list_snapshots as snapshots_in_store

    volume_id = volume_id_of(volume, timeout=timeout) if volume else None

    async def work(connection: Any) -> list[dict[str, Any]]:  # Any: asyncpg connection; JSON rows
        rows = await snapshots_in_store(
            connection, volume_id=volume_id, include_destroyed=include_destroyed, limit=limit
        )
        return [
            {
                "snapshot_id": str(row.snapshot_id),
                "volume_id": str(row.volume_id),
                "name": row.name,
                "kind": row.kind.value,
                "state": row.state.value,
                "parent_id": str(row.parent_id) if row.parent_id else None,
                "size_bytes": row.size_bytes,
                "physical_size_bytes": row.physical_size_bytes,
                "created_at": row.created_at.isoformat(),
            }
            for row in rows
        ]

    rows = read(work)
    if as_json:
        print_json({"snapshots": rows})
        return
    names = volume_names(timeout=timeout) if rows else {}
    table = listing("id", "name", "volume", "kind", "state", "size", "on pool", "created")
    for row in rows:
        table.add_row(
            row["snapshot_id"],
            row["name"],
            names.get(row["volume_id"], row["volume_id"]),
            row["kind"],
            row["state"],
            human_bytes(row["size_bytes"]),
            human_bytes(row["physical_size_bytes"]),
            row["created_at"][:19],
        )
    console.print(table)


@app.command("delete")
def delete(snapshot: SnapshotArgument, as_json: JsonOption = False, timeout: TimeoutOption = 300.0) -> None:
    """Delete a snapshot (a delta's data are merged where the chain needs them)."""
    from schemas.snapshot import DeleteSnapshot, SnapshotDeleted, SnapshotDeleteFailed

    snapshot_id = snapshot_id_of(snapshot)

    async def work(client: "Client") -> SnapshotDeleted:
        with errors.status(f"deleting snapshot {snapshot} ..."):
            deleted = await client.send(
                DeleteSnapshot(snapshot_id=snapshot_id), (SnapshotDeleted,), (SnapshotDeleteFailed,), timeout=timeout
            )
        assert isinstance(deleted, SnapshotDeleted)
        return deleted

    deleted = talk(work)
    if as_json:
        print_json(deleted)
        return
    pending = " (merge of its data pending)" if deleted.coalesce_pending else ""
    console.print(f"snapshot {as_given(snapshot, deleted.snapshot_id)} deleted{pending}")


@app.command("revert")
def revert(snapshot: SnapshotArgument, as_json: JsonOption = False, timeout: TimeoutOption = 300.0) -> None:
    """Revert a volume to one of its snapshots (refused while its VM runs: use `strata vm revert`)."""
    from schemas.snapshot import RevertSnapshot, SnapshotReverted, SnapshotRevertFailed

    snapshot_id = snapshot_id_of(snapshot)

    async def work(client: "Client") -> tuple[SnapshotReverted, str]:
        with _progress() as progress:
            progress.add_task(f"reverting to snapshot {snapshot}", total=None)
            reverted = await client.send(
                RevertSnapshot(snapshot_id=snapshot_id), (SnapshotReverted,), (SnapshotRevertFailed,), timeout=timeout
            )
        assert isinstance(reverted, SnapshotReverted)
        try:
            volume = (await find_volume(client, str(reverted.volume_id), timeout=timeout)).name
        except StrataError:
            volume = str(reverted.volume_id)  # reverted all the same: only its name is not known
        return reverted, volume

    reverted, volume = talk(work)
    if as_json:
        print_json(reverted)
        return
    console.print(f"volume {volume} reverted to snapshot {as_given(snapshot, reverted.snapshot_id)}")

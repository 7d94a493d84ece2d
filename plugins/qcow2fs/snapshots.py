"""Snapshots: a delta freezes the active layer under the snapshot's name and starts a new one on top of it;
a full one is a standalone copy. Revert swaps in a fresh layer on the snapshot; delete forgets the snapshot and
drops its layer once no newer layer needs it.

Each step leaves the files in a state a re-call recognises: the snapshot record (state `creating`) is written
first, the active layer is renamed before its new overlay is published, and the record becomes `ready` last.
"""

from datetime import datetime
from pathlib import Path

from plugins.qcow2fs.chain import collect_garbage
from plugins.qcow2fs.context import PoolContext, now
from plugins.qcow2fs.layout import read_record, sync_dir, write_record
from plugins.qcow2fs.qemu_img import convert_args, read_header
from plugins.qcow2fs.volumes import convert_out
from plugins.sdk import faults
from plugins.sdk.errors import AlreadyExists, InvalidArgument, NotFound
from plugins.sdk.progress import ProgressCallback
from plugins.sdk.types import Snapshot, SnapshotKind, Volume, VolumeFormat


def _snapshot(record: dict[str, object]) -> Snapshot:
    return Snapshot(
        snapshot_id=str(record["snapshot_id"]),
        volume_id=str(record["volume_id"]),
        kind=SnapshotKind(str(record["kind"])),
        size_bytes=int(str(record["size_bytes"])),
        created_at=datetime.fromisoformat(str(record["created_at"])),
    )


async def _with_footprint(context: PoolContext, snapshot: Snapshot) -> Snapshot:
    """The snapshot with what its file holds on the pool: the blocks allocated, not the virtual size (a delta
    holds only the clusters written since the snapshot before it)."""
    try:
        stat = await context.off_loop(snapshot_image(context, snapshot).stat)
    except FileNotFoundError:  # its layer already merged away: what it holds is no longer its own
        return snapshot
    return snapshot.model_copy(update={"physical_size_bytes": stat.st_blocks * 512})


def snapshot_image(context: PoolContext, snapshot: Snapshot) -> Path:
    """The file that holds the snapshot's data."""
    if snapshot.kind is SnapshotKind.DELTA:
        return context.layout.delta_layer(snapshot.volume_id, snapshot.snapshot_id)
    return context.layout.full_image(snapshot.volume_id, snapshot.snapshot_id)


async def create_snapshot(context: PoolContext, snapshot_id: str, volume_id: str, kind: SnapshotKind) -> Snapshot:
    """Take the snapshot, or finish the one a crash interrupted; the same call again returns it."""
    record_path = context.layout.snapshot_record(snapshot_id)
    async with context.lock(volume_id):
        record = await context.off_loop(read_record, record_path)
        if record is not None:
            if record["volume_id"] != volume_id or record["kind"] != kind.value:
                raise AlreadyExists(f"snapshot {snapshot_id!r} exists for another request", field="snapshot_id")
            if record["state"] == "ready":
                return await _with_footprint(context, _snapshot(record))
        else:
            await context.volume_record(volume_id)
            await context.require_changeable()
            size = (await context.off_loop(read_header, context.layout.active(volume_id))).size_bytes
            record = {
                "snapshot_id": snapshot_id,
                "volume_id": volume_id,
                "kind": kind.value,
                "size_bytes": size,
                "created_at": now(),
                "state": "creating",
            }
            await context.off_loop(write_record, record_path, record)
        if kind is SnapshotKind.DELTA:
            await _freeze_active(context, volume_id, context.layout.delta_layer(volume_id, snapshot_id))
        else:
            await _copy_active(context, volume_id, context.layout.full_image(volume_id, snapshot_id))
        ready = {**record, "state": "ready"}
        await context.off_loop(write_record, record_path, ready)
        return await _with_footprint(context, _snapshot(ready))


async def _freeze_active(context: PoolContext, volume_id: str, layer: Path) -> None:
    active = context.layout.active(volume_id)
    if not await context.off_loop(layer.exists):
        await context.off_loop(_rename, active, layer)
        await faults.point("qcow2fs.snapshot.after_freeze")
    if not await context.off_loop(active.exists):
        await _new_active_on(context, volume_id, layer)


async def _new_active_on(context: PoolContext, volume_id: str, base: Path) -> None:
    """Publish a fresh, empty active layer backed by `base` (a file of the same directory)."""
    active = context.layout.active(volume_id)
    temporary = active.with_name(".active.qcow2.tmp")
    size = (await context.off_loop(read_header, base)).size_bytes
    await context.off_loop(temporary.unlink, True)
    await context.qemu.run("create", "-q", "-f", "qcow2", "-b", base.name, "-F", "qcow2", str(temporary), str(size))
    await context.off_loop(_rename, temporary, active)


async def _copy_active(context: PoolContext, volume_id: str, image: Path) -> None:
    if await context.off_loop(image.exists):
        return
    partial = image.with_name(f".{image.name}.tmp")
    await context.off_loop(partial.unlink, True)
    active = context.layout.active(volume_id)
    await context.qemu.run(*convert_args(active, partial, source_format="qcow2", target_format="qcow2"))
    await context.off_loop(_rename, partial, image)


def _rename(source: Path, target: Path) -> None:
    source.replace(target)
    sync_dir(target.parent)


async def get_snapshot(context: PoolContext, snapshot_id: str) -> Snapshot:
    """A finished snapshot; `NotFound` otherwise."""
    record = await context.off_loop(read_record, context.layout.snapshot_record(snapshot_id))
    if record is None or record["state"] != "ready":
        raise NotFound(f"snapshot {snapshot_id!r} does not exist", field="snapshot_id")
    return _snapshot(record)


async def copy_out_snapshot(
    context: PoolContext,
    volume_id: str,
    snapshot_id: str,
    target: Path,
    *,
    target_format: VolumeFormat,
    progress: ProgressCallback | None,
) -> None:
    """Write the snapshot's content to `target`: its layer with the layers under it read through (a full
    snapshot's file stands alone), the volume's lock held so that no coalesce moves the layers meanwhile."""
    async with context.lock(volume_id):
        snapshot = await get_snapshot(context, snapshot_id)
        if snapshot.volume_id != volume_id:
            raise NotFound(f"snapshot {snapshot_id!r} is not of volume {volume_id!r}", field="snapshot_id")
        await convert_out(
            context,
            snapshot_image(context, snapshot),
            snapshot.size_bytes,
            target,
            target_format=target_format,
            progress=progress,
        )


async def list_snapshots(context: PoolContext, volume_id: str) -> list[Snapshot]:
    """The volume's finished snapshots, oldest first."""
    await context.volume_record(volume_id)
    records = await context.off_loop(_records_of, context, volume_id)
    return sorted((_snapshot(r) for r in records if r["state"] == "ready"), key=lambda s: s.created_at)


def _records_of(context: PoolContext, volume_id: str) -> list[dict[str, object]]:
    found = []
    for path in context.layout.snapshots.glob("*.json"):
        record = read_record(path)
        if record is not None and record.get("volume_id") == volume_id:
            found.append(record)
    return found


async def delete_snapshot(context: PoolContext, snapshot_id: str) -> None:
    """Forget the snapshot, then drop every layer no one needs; a snapshot already gone is fine."""
    record_path = context.layout.snapshot_record(snapshot_id)
    record = await context.off_loop(read_record, record_path)
    if record is None:
        return
    volume_id = str(record["volume_id"])
    async with context.lock(volume_id):
        await context.require_changeable()
        await context.off_loop(record_path.unlink, True)
        await faults.point("qcow2fs.snapshot_delete.after_forget")
        if await context.off_loop(context.layout.volume_dir(volume_id).exists):
            await context.off_loop(collect_garbage, context, volume_id)


async def revert_to_snapshot(context: PoolContext, volume_id: str, snapshot_id: str) -> Volume:
    """Replace the active layer by an empty one on the snapshot's layer; the rename is the switch."""
    snapshot = await get_snapshot(context, snapshot_id)
    if snapshot.volume_id != volume_id:
        raise InvalidArgument(f"snapshot {snapshot_id!r} belongs to volume {snapshot.volume_id!r}", field="snapshot_id")
    async with context.lock(volume_id):
        await context.require_changeable()
        base = snapshot_image(context, snapshot)
        active = context.layout.active(volume_id)
        temporary = active.with_name(".active.qcow2.tmp")
        await context.off_loop(temporary.unlink, True)
        await context.qemu.run(
            "create", "-q", "-f", "qcow2", "-b", base.name, "-F", "qcow2", str(temporary), str(snapshot.size_bytes)
        )
        await faults.point("qcow2fs.revert.before_switch")
        await context.off_loop(_rename, temporary, active)
        await context.off_loop(collect_garbage, context, volume_id)
    return await context.describe_volume(volume_id)

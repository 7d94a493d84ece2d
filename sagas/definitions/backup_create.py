"""Back up a volume or one of its snapshots (DESIGN §7, §10), keeping the snapshot out of BackingUp after any fault.

Lock the volume; without a snapshot, take one (undone by deleting it); move the snapshot to BackingUp (undone by
moving it back to CreatedOnPrimary: CloudStack #8423 left snapshots in BackingUp after failures); have the backup
service take the backup (it records it BackingUp, full or incremental, and in Error with the reason if it fails).
That is the pivot; then the snapshot becomes BackedUp. A snapshot the saga took (and was not asked to keep) stays
as an anchor: the next backup reads only what changed since it, and the snapshot service builds the next snapshot
as a delta on it (a delta chain needs its older snapshots). When a backup's new snapshot is a full one (a new
chain), the anchors older backups of the volume kept are released and this saga deletes them.
"""

from uuid import NAMESPACE_URL, UUID, uuid5

from sagas import SagaContext, saga
from sagas.definitions.revert_vm import LOCK_WAIT, STEP_RETRY, STEP_TIMEOUT, UNDO_RETRY, reply_as, volume_resource
from schemas import Event
from schemas.backup import (
    BackupCreated,
    BackupTaken,
    BeginSnapshotBackup,
    CreateBackup,
    EndSnapshotBackup,
    SnapshotBackupBegun,
    SnapshotBackupEnded,
    TakeBackup,
)
from schemas.errors import InvalidArgument
from schemas.snapshot import CreateSnapshot, DeleteSnapshot, SnapshotCreated, SnapshotDeleted, SnapshotKind

SAGA_NAME = "backup.create"
BACKUP_TIMEOUT = 6 * 3600.0  # a backup reads a whole volume at worst; a dead agent's command is redelivered anyway


def backup_snapshot_id(backup_id: UUID) -> UUID:
    """The id of the snapshot a volume backup takes (callers can name it before it exists)."""
    return uuid5(NAMESPACE_URL, f"strata:backup-snapshot:{backup_id}")


@saga(SAGA_NAME, version=1)
async def create_backup(ctx: SagaContext, cmd: CreateBackup) -> BackupCreated:
    """Back up `cmd.snapshot_id`, or a new snapshot of `cmd.volume_id`, into `cmd.repository_id`."""
    await ctx.lock(volume_resource(cmd.volume_id), wait=LOCK_WAIT)
    snapshot_id = cmd.snapshot_id or backup_snapshot_id(cmd.backup_id)
    starts_a_chain = False
    if cmd.snapshot_id is None:
        created = await ctx.step(
            CreateSnapshot(snapshot_id=snapshot_id, volume_id=cmd.volume_id, name=f"backup-{cmd.backup_id.hex[:12]}"),
            compensate=DeleteSnapshot(snapshot_id=snapshot_id),
            retry=STEP_RETRY,
            timeout=STEP_TIMEOUT,
            compensate_retry=UNDO_RETRY,
        )
        starts_a_chain = reply_as(created, SnapshotCreated).kind is SnapshotKind.FULL
    begun = reply_as(
        await ctx.step(
            BeginSnapshotBackup(snapshot_id=snapshot_id),
            compensate=EndSnapshotBackup(snapshot_id=snapshot_id, succeeded=False),
            retry=STEP_RETRY,
            timeout=STEP_TIMEOUT,
            compensate_retry=UNDO_RETRY,
        ),
        SnapshotBackupBegun,
    )
    if begun.volume_id != cmd.volume_id:
        raise InvalidArgument(f"snapshot {snapshot_id} is of volume {begun.volume_id}", field="snapshot_id")
    taken = reply_as(
        await ctx.step(
            TakeBackup(
                backup_id=cmd.backup_id,
                repository_id=cmd.repository_id,
                volume_id=cmd.volume_id,
                snapshot_id=snapshot_id,
                pool_id=begun.pool_id,
                schedule_id=cmd.schedule_id,
                anchor=cmd.snapshot_id is None and not cmd.keep_snapshot,
                release_anchors=starts_a_chain,
            ),
            retry=STEP_RETRY,
            timeout=BACKUP_TIMEOUT,
        ),
        BackupTaken,
    )
    await ctx.pivot()

    await ctx.step(EndSnapshotBackup(snapshot_id=snapshot_id, succeeded=True), retry=UNDO_RETRY, timeout=STEP_TIMEOUT)
    for released in taken.release_snapshots:
        await ctx.step(DeleteSnapshot(snapshot_id=released), retry=UNDO_RETRY, timeout=STEP_TIMEOUT)
    return BackupCreated(
        backup_id=taken.backup_id,
        volume_id=taken.volume_id,
        snapshot_id=taken.snapshot_id,
        repository_id=taken.repository_id,
        kind=taken.kind,
        parent_id=taken.parent_id,
        size_bytes=taken.size_bytes,
        bytes_read=taken.bytes_read,
        bytes_written=taken.bytes_written,
        bytes_reused=taken.bytes_reused,
        changed_blocks=taken.changed_blocks,
        note=taken.note,
    )


# The domain events participants may answer this saga's steps with; the coordinator binds its queue to them.
REPLY_TYPES: tuple[type[Event], ...] = (
    SnapshotCreated,
    SnapshotDeleted,
    SnapshotBackupBegun,
    SnapshotBackupEnded,
    BackupTaken,
)

"""Restore a backup to a new volume or in place (DESIGN §7, §10), with compensation.

Lock the backup, and the volume restored in place (and its VM); hold the backup in Restoring (undone by ending the
restore). To a new volume: create it on the chosen pool (undone by deleting it). In place: the VM must be stopped;
take a safety snapshot (undone by deleting it). Then hold the volume (undone by releasing it) and have the backup
service write the backup over it; the agent checks the volume's bytes against the backup's hashes before answering,
so a restore that restored nothing cannot succeed (CloudStack #11118). In place, a failed write is undone by
reverting to the safety snapshot. The release is the pivot; afterwards the safety snapshot is dropped and the backup
is BackedUp.
"""

from uuid import UUID

from sagas import SagaContext, saga
from sagas.definitions.revert_vm import (
    LOCK_WAIT,
    STEP_RETRY,
    STEP_TIMEOUT,
    UNDO_RETRY,
    reply_as,
    vm_resource,
    volume_resource,
)
from schemas import Event
from schemas.backup_restores import (
    BackupRestored,
    BackupRestoredToVolume,
    BeginRestore,
    EndRestore,
    RestoreBackup,
    RestoreBackupToVolume,
    RestoreBegun,
    RestoreEnded,
)
from schemas.errors import FailedPrecondition, InvalidArgument
from schemas.snapshot import (
    CreateSnapshot,
    DeleteSnapshot,
    RevertSnapshot,
    SnapshotCreated,
    SnapshotDeleted,
    SnapshotReverted,
)
from schemas.storage import (
    BeginVolumeOperation,
    CreateVolume,
    DeleteVolume,
    EndVolumeOperation,
    VolumeCreated,
    VolumeDeleted,
    VolumeOperation,
    VolumeStateChanged,
)
from schemas.vm import DescribeVm, PowerState, VmDescribed

SAGA_NAME = "backup.restore"
RESTORE_TIMEOUT = 6 * 3600.0
# A restore holds its volume as a revert does: its content is being replaced by an older one.
HOLD = VolumeOperation.REVERT_SNAPSHOT


def backup_resource(backup_id: UUID) -> str:
    """The lock name of a backup."""
    return f"backup:{backup_id}"


@saga(SAGA_NAME, version=1)
async def restore_backup(ctx: SagaContext, cmd: RestoreBackup) -> BackupRestored:
    """Write `cmd.backup_id` to a new volume or over `cmd.volume_id`, checked against the backup's hashes."""
    # A new volume is not locked: nothing else can name it before this saga makes it, and the storage service sends
    # its agent the create (and the undoing delete) without the saga's fencing token.
    resources = [backup_resource(cmd.backup_id)]
    if cmd.in_place:
        resources.append(volume_resource(cmd.volume_id))
    if cmd.vm_id is not None:
        resources.append(vm_resource(cmd.vm_id))
    await ctx.lock(*resources, wait=LOCK_WAIT)
    begun = reply_as(
        await ctx.step(
            BeginRestore(backup_id=cmd.backup_id),
            compensate=EndRestore(backup_id=cmd.backup_id, succeeded=False),
            retry=STEP_RETRY,
            timeout=STEP_TIMEOUT,
            compensate_retry=UNDO_RETRY,
        ),
        RestoreBegun,
    )
    pool_id: UUID | None = None
    safety: UUID | None = None
    if cmd.in_place:
        if cmd.vm_id is not None and cmd.host is not None:
            described = reply_as(
                await ctx.query(DescribeVm(vm_id=cmd.vm_id, host=cmd.host), retry=STEP_RETRY, timeout=STEP_TIMEOUT),
                VmDescribed,
            )
            if described.power_state is not PowerState.STOPPED:
                raise FailedPrecondition(
                    f"VM {cmd.vm_id} is {described.power_state}: stop it before restoring its volume", field="vm_id"
                )
        safety = await ctx.uuid()
        await ctx.step(
            CreateSnapshot(
                snapshot_id=safety, volume_id=cmd.volume_id, name=f"safety-restore-{cmd.restore_id.hex[:8]}"
            ),
            compensate=DeleteSnapshot(snapshot_id=safety),
            retry=STEP_RETRY,
            timeout=STEP_TIMEOUT,
            compensate_retry=UNDO_RETRY,
        )
    else:
        if cmd.name is None or cmd.zone_id is None:
            raise InvalidArgument("a restore to a new volume needs its name and zone_id", field="name")
        created = reply_as(
            await ctx.step(
                CreateVolume(
                    volume_id=cmd.volume_id,
                    name=cmd.name,
                    size_bytes=begun.size_bytes,
                    zone_id=cmd.zone_id,
                    pool_id=cmd.pool_id,
                    host=cmd.host,
                    cluster_id=cmd.cluster_id,
                ),
                compensate=DeleteVolume(volume_id=cmd.volume_id),
                retry=STEP_RETRY,
                timeout=STEP_TIMEOUT,
                compensate_retry=UNDO_RETRY,
            ),
            VolumeCreated,
        )
        pool_id = created.pool_id
    await ctx.step(
        BeginVolumeOperation(volume_id=cmd.volume_id, operation=HOLD),
        compensate=EndVolumeOperation(volume_id=cmd.volume_id, operation=HOLD, succeeded=False),
        retry=STEP_RETRY,
        timeout=STEP_TIMEOUT,
        compensate_retry=UNDO_RETRY,
    )
    await ctx.step(
        RestoreBackupToVolume(backup_id=cmd.backup_id, volume_id=cmd.volume_id, pool_id=pool_id),
        compensate=RevertSnapshot(snapshot_id=safety) if safety is not None else None,
        retry=STEP_RETRY,
        timeout=RESTORE_TIMEOUT,
        compensate_retry=UNDO_RETRY,
    )
    await ctx.step(
        EndVolumeOperation(volume_id=cmd.volume_id, operation=HOLD, succeeded=True),
        retry=STEP_RETRY,
        timeout=STEP_TIMEOUT,
    )
    await ctx.pivot()

    if safety is not None:
        await ctx.step(DeleteSnapshot(snapshot_id=safety), retry=UNDO_RETRY, timeout=STEP_TIMEOUT)
    await ctx.step(EndRestore(backup_id=cmd.backup_id, succeeded=True), retry=UNDO_RETRY, timeout=STEP_TIMEOUT)
    return BackupRestored(
        restore_id=cmd.restore_id, backup_id=cmd.backup_id, volume_id=cmd.volume_id, in_place=cmd.in_place
    )


REPLY_TYPES: tuple[type[Event], ...] = (
    RestoreBegun,
    RestoreEnded,
    BackupRestoredToVolume,
    SnapshotCreated,
    SnapshotDeleted,
    SnapshotReverted,
    VolumeCreated,
    VolumeDeleted,
    VolumeStateChanged,
    VmDescribed,
)

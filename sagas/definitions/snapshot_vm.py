"""Snapshot every volume of a VM together (a VM snapshot): the VM stopped meanwhile if it runs, so that the
volumes agree with each other.

Lock the VM and its volumes; describe the VM and stop it if it runs (undone by starting it); snapshot each volume
(undone by deleting the snapshot); start the VM again. That start is the pivot: a failure before it deletes the
snapshots taken and restores the VM's power state. The snapshots' ids derive from the VM snapshot's id and the
volume's, so a caller can name them before they exist.
"""

from uuid import NAMESPACE_URL, UUID, uuid5

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
from schemas.snapshot import (
    CreateSnapshot,
    CreateVmSnapshot,
    DeleteSnapshot,
    SnapshotCreated,
    VmSnapshotCreated,
    VolumeSnapshotPair,
)
from schemas.vm import DescribeVm, PowerState, StartVm, StopVm, VmDescribed, VmStarted, VmStopped

SAGA_NAME = "vm.snapshot"
NAME_ROOM = 120  # a volume's snapshot is named `<VM snapshot name>-<n>`, within the 128 characters a name may have


def volume_snapshot_id(vm_snapshot_id: UUID, volume_id: UUID) -> UUID:
    """The id of the snapshot of `volume_id` that belongs to VM snapshot `vm_snapshot_id`."""
    return uuid5(NAMESPACE_URL, f"strata:vm-snapshot:{vm_snapshot_id}:{volume_id}")


@saga(SAGA_NAME, version=1)
async def snapshot_vm(ctx: SagaContext, cmd: CreateVmSnapshot) -> VmSnapshotCreated:
    """Snapshot every volume of `cmd.vm_id` together."""
    await ctx.lock(vm_resource(cmd.vm_id), *(volume_resource(v) for v in cmd.volume_ids), wait=LOCK_WAIT)
    was_running = False
    if cmd.host is not None:
        described = await ctx.query(DescribeVm(vm_id=cmd.vm_id, host=cmd.host), retry=STEP_RETRY, timeout=STEP_TIMEOUT)
        was_running = reply_as(described, VmDescribed).power_state is PowerState.RUNNING
    if was_running and cmd.host is not None:
        await ctx.step(
            StopVm(vm_id=cmd.vm_id, host=cmd.host),
            compensate=StartVm(vm_id=cmd.vm_id, host=cmd.host),
            retry=STEP_RETRY,
            timeout=STEP_TIMEOUT,
            compensate_retry=UNDO_RETRY,
        )
    pairs = tuple(
        VolumeSnapshotPair(volume_id=volume_id, snapshot_id=volume_snapshot_id(cmd.vm_snapshot_id, volume_id))
        for volume_id in cmd.volume_ids
    )
    await ctx.gather(
        *(
            ctx.step(
                CreateSnapshot(
                    snapshot_id=pair.snapshot_id,
                    volume_id=pair.volume_id,
                    name=f"{cmd.name[:NAME_ROOM]}-{index + 1}",
                    vm_snapshot_id=cmd.vm_snapshot_id,
                ),
                compensate=DeleteSnapshot(snapshot_id=pair.snapshot_id),
                retry=STEP_RETRY,
                timeout=STEP_TIMEOUT,
                compensate_retry=UNDO_RETRY,
            )
            for index, pair in enumerate(pairs)
        )
    )
    if was_running and cmd.host is not None:
        await ctx.step(StartVm(vm_id=cmd.vm_id, host=cmd.host), retry=STEP_RETRY, timeout=STEP_TIMEOUT)
    await ctx.pivot()
    return VmSnapshotCreated(vm_snapshot_id=cmd.vm_snapshot_id, vm_id=cmd.vm_id, snapshots=pairs)


# The domain events participants may answer this saga's steps with (besides the generic step replies).
REPLY_TYPES: tuple[type[Event], ...] = (VmDescribed, VmStopped, VmStarted, SnapshotCreated)

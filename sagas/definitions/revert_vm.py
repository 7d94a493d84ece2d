"""Revert a VM to a VM snapshot (DESIGN §5): every volume back to its snapshot, the VM in its power state again.

Lock the VM and its volumes; describe the VM; stop it if it runs (undone by starting it); take a safety snapshot
of each volume (undone by deleting it); hold each volume in RevertSnapshotting (undone by releasing it); revert
each volume to the requested snapshot (undone by reverting it to its safety snapshot); start the VM if it was
running. That start is the pivot: any failure before it restores every volume from its safety snapshot and the
VM's power state (the engine runs the undos in reverse order). After it the volumes are released and the safety
snapshots dropped, retried forward until done.

The saga reaches storage only by commands: the agent of the VM's host describes, stops and starts the VM; the
snapshot service takes, reverts to and deletes snapshots; the storage service holds and releases the volumes.
"""

from typing import TypeVar
from uuid import UUID

from pydantic import BaseModel

from sagas import RetryPolicy, SagaContext, saga
from schemas import Event, Message
from schemas.errors import InvalidArgument
from schemas.sagas import StepSucceeded
from schemas.snapshot import (
    CreateSnapshot,
    DeleteSnapshot,
    RevertSnapshot,
    RevertVmToSnapshot,
    SnapshotCreated,
    SnapshotDeleted,
    SnapshotReverted,
    VmReverted,
)
from schemas.storage import BeginVolumeOperation, EndVolumeOperation, VolumeOperation, VolumeStateChanged
from schemas.vm import DescribeVm, PowerState, StartVm, StopVm, VmDescribed, VmStarted, VmStopped

SAGA_NAME = "vm.revert_to_snapshot"
SAFETY_PREFIX = "safety-"
# A step may wait behind an agent's restart or a busy pool: retry transient failures for about a minute.
STEP_RETRY = RetryPolicy(attempts=8, backoff=0.5, multiplier=2.0, max_backoff=15.0)
# Undoing, and finishing after the pivot, must not give up easily: a half-undone revert leaves a VM on mixed data,
# and there is no way back after the VM started on the reverted volumes. A plugin's internal error or a busy
# resource (Aborted) is worth another attempt there, since every command is idempotent.
UNDO_RETRY = RetryPolicy(
    attempts=10, backoff=0.5, multiplier=2.0, max_backoff=15.0, retry_on=("TRANSIENT", "INTERNAL", "ABORTED")
)
STEP_TIMEOUT = 120.0
LOCK_WAIT = 60.0

Reply = TypeVar("Reply", bound=BaseModel)


def vm_resource(vm_id: UUID) -> str:
    """The lock name of a VM (the agents' fencing resource too)."""
    return f"vm:{vm_id}"


def volume_resource(volume_id: UUID) -> str:
    """The lock name of a volume (the services' fencing resource too)."""
    return f"volume:{volume_id}"


def safety_snapshot_name(vm_snapshot_id: UUID, volume_id: UUID) -> str:
    """Name of the safety snapshot of one volume taken by a revert (operators recognise and may clean them)."""
    return f"{SAFETY_PREFIX}{vm_snapshot_id.hex[:8]}-{volume_id.hex[:8]}"


def reply_as(reply: Message, model: type[Reply]) -> Reply:
    """Read a step's reply as `model`: participants answer with the domain event or a generic StepSucceeded."""
    if isinstance(reply, model):
        return reply
    if isinstance(reply, StepSucceeded):
        return model.model_validate(reply.result)
    raise InvalidArgument(f"expected {model.__name__} as the reply, got {type(reply).__name__}", field="reply")


@saga(SAGA_NAME, version=1)
async def revert_vm_to_snapshot(ctx: SagaContext, cmd: RevertVmToSnapshot) -> VmReverted:
    """Revert every volume of `cmd.vm_id` to its snapshot in `cmd.snapshots`, keeping the VM's power state."""
    volumes = [pair.volume_id for pair in cmd.snapshots]
    await ctx.lock(vm_resource(cmd.vm_id), *(volume_resource(v) for v in volumes), wait=LOCK_WAIT)

    described = await ctx.query(DescribeVm(vm_id=cmd.vm_id, host=cmd.host), retry=STEP_RETRY, timeout=STEP_TIMEOUT)
    was_running = reply_as(described, VmDescribed).power_state is PowerState.RUNNING
    if was_running:
        await ctx.step(
            StopVm(vm_id=cmd.vm_id, host=cmd.host),
            compensate=StartVm(vm_id=cmd.vm_id, host=cmd.host),
            retry=STEP_RETRY,
            timeout=STEP_TIMEOUT,
            compensate_retry=UNDO_RETRY,
        )

    safety = {volume_id: await ctx.uuid() for volume_id in volumes}
    await ctx.gather(
        *(
            ctx.step(
                CreateSnapshot(
                    snapshot_id=safety[volume_id],
                    volume_id=volume_id,
                    name=safety_snapshot_name(cmd.vm_snapshot_id, volume_id),
                ),
                compensate=DeleteSnapshot(snapshot_id=safety[volume_id]),
                retry=STEP_RETRY,
                timeout=STEP_TIMEOUT,
                compensate_retry=UNDO_RETRY,
            )
            for volume_id in volumes
        )
    )
    await ctx.gather(
        *(
            ctx.step(
                BeginVolumeOperation(volume_id=volume_id, operation=VolumeOperation.REVERT_SNAPSHOT),
                compensate=EndVolumeOperation(
                    volume_id=volume_id, operation=VolumeOperation.REVERT_SNAPSHOT, succeeded=False
                ),
                retry=STEP_RETRY,
                timeout=STEP_TIMEOUT,
                compensate_retry=UNDO_RETRY,
            )
            for volume_id in volumes
        )
    )
    await ctx.gather(
        *(
            ctx.step(
                RevertSnapshot(snapshot_id=pair.snapshot_id),
                compensate=RevertSnapshot(snapshot_id=safety[pair.volume_id]),
                retry=STEP_RETRY,
                timeout=STEP_TIMEOUT,
                compensate_retry=UNDO_RETRY,
            )
            for pair in cmd.snapshots
        )
    )
    if was_running:
        await ctx.step(StartVm(vm_id=cmd.vm_id, host=cmd.host), retry=STEP_RETRY, timeout=STEP_TIMEOUT)
    await ctx.pivot()

    await ctx.gather(
        *(
            ctx.step(
                EndVolumeOperation(volume_id=volume_id, operation=VolumeOperation.REVERT_SNAPSHOT, succeeded=True),
                retry=UNDO_RETRY,
                timeout=STEP_TIMEOUT,
            )
            for volume_id in volumes
        )
    )
    await ctx.gather(
        *(
            ctx.step(DeleteSnapshot(snapshot_id=safety[volume_id]), retry=UNDO_RETRY, timeout=STEP_TIMEOUT)
            for volume_id in volumes
        )
    )
    return VmReverted(vm_id=cmd.vm_id, vm_snapshot_id=cmd.vm_snapshot_id, restarted=was_running)


# The domain events participants may answer this saga's steps with (besides the generic step replies); the
# coordinator that runs it binds its queue to them.
REPLY_TYPES: tuple[type[Event], ...] = (
    VmDescribed,
    VmStopped,
    VmStarted,
    SnapshotCreated,
    SnapshotReverted,
    SnapshotDeleted,
    VolumeStateChanged,
)

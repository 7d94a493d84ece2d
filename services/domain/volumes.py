"""The life cycle of a volume (CloudStack's Volume.State)."""

from enum import StrEnum

from schemas.storage import VolumeOperation, VolumeState
from services.domain.states import StateMachine


class VolumeEvent(StrEnum):
    """What happens to a volume: a request or the outcome of the work it started."""

    CREATE_REQUESTED = "CreateRequested"
    OPERATION_SUCCEEDED = "OperationSucceeded"
    OPERATION_FAILED = "OperationFailed"
    RESIZE_REQUESTED = "ResizeRequested"
    SNAPSHOT_REQUESTED = "SnapshotRequested"
    MIGRATION_REQUESTED = "MigrationRequested"
    REVERT_SNAPSHOT_REQUESTED = "RevertSnapshotRequested"
    DESTROY_REQUESTED = "DestroyRequested"
    EXPUNGE_REQUESTED = "ExpungeRequested"


_ = VolumeEvent
# Every long operation returns the volume to Ready whatever its outcome: the saga that ran it has restored the
# data on failure, and a volume left in Migrating or Snapshotting is exactly what CloudStack operators complain
# of. A failed create goes back to Allocated (nothing exists on storage); a failed expunge back to Destroy, from
# which it is retried.
_BACK_TO_READY = {_.OPERATION_SUCCEEDED: VolumeState.READY, _.OPERATION_FAILED: VolumeState.READY}
VOLUME_STATES: StateMachine[VolumeState, VolumeEvent] = StateMachine(
    "volume",
    {
        VolumeState.ALLOCATED: {_.CREATE_REQUESTED: VolumeState.CREATING, _.DESTROY_REQUESTED: VolumeState.DESTROY},
        VolumeState.CREATING: {_.OPERATION_SUCCEEDED: VolumeState.READY, _.OPERATION_FAILED: VolumeState.ALLOCATED},
        VolumeState.READY: {
            _.RESIZE_REQUESTED: VolumeState.RESIZING,
            _.SNAPSHOT_REQUESTED: VolumeState.SNAPSHOTTING,
            _.MIGRATION_REQUESTED: VolumeState.MIGRATING,
            _.REVERT_SNAPSHOT_REQUESTED: VolumeState.REVERT_SNAPSHOTTING,
            _.DESTROY_REQUESTED: VolumeState.DESTROY,
        },
        VolumeState.RESIZING: _BACK_TO_READY,
        VolumeState.SNAPSHOTTING: _BACK_TO_READY,
        VolumeState.MIGRATING: _BACK_TO_READY,
        VolumeState.REVERT_SNAPSHOTTING: _BACK_TO_READY,
        VolumeState.DESTROY: {_.EXPUNGE_REQUESTED: VolumeState.EXPUNGING},
        VolumeState.EXPUNGING: {_.OPERATION_SUCCEEDED: VolumeState.EXPUNGED, _.OPERATION_FAILED: VolumeState.DESTROY},
        VolumeState.EXPUNGED: {},
    },
)

_OPERATION_EVENTS = {
    VolumeOperation.MIGRATE: VolumeEvent.MIGRATION_REQUESTED,
    VolumeOperation.SNAPSHOT: VolumeEvent.SNAPSHOT_REQUESTED,
    VolumeOperation.REVERT_SNAPSHOT: VolumeEvent.REVERT_SNAPSHOT_REQUESTED,
}
_OPERATION_STATES = {
    VolumeOperation.MIGRATE: VolumeState.MIGRATING,
    VolumeOperation.SNAPSHOT: VolumeState.SNAPSHOTTING,
    VolumeOperation.REVERT_SNAPSHOT: VolumeState.REVERT_SNAPSHOTTING,
}

# States in which a volume has data on a pool: it counts against the pool's allocated capacity.
VOLUME_STATES_ON_POOL = frozenset(
    {
        VolumeState.CREATING,
        VolumeState.READY,
        VolumeState.RESIZING,
        VolumeState.SNAPSHOTTING,
        VolumeState.MIGRATING,
        VolumeState.REVERT_SNAPSHOTTING,
        VolumeState.DESTROY,
        VolumeState.EXPUNGING,
    }
)


def operation_event(operation: VolumeOperation) -> VolumeEvent:
    """The event that holds a Ready volume for `operation`."""
    return _OPERATION_EVENTS[operation]


def operation_state(operation: VolumeOperation) -> VolumeState:
    """The state a volume is held in while `operation` runs."""
    return _OPERATION_STATES[operation]

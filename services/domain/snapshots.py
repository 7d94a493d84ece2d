"""The life cycle of a volume snapshot (CloudStack's Snapshot.State)."""

from enum import StrEnum

from schemas.snapshot import SnapshotState
from services.domain.states import StateMachine


class SnapshotEvent(StrEnum):
    """What happens to a snapshot: a request or the outcome of the work it started."""

    CREATE_REQUESTED = "CreateRequested"
    OPERATION_SUCCEEDED = "OperationSucceeded"
    OPERATION_FAILED = "OperationFailed"
    BACKUP_REQUESTED = "BackupRequested"
    DESTROY_REQUESTED = "DestroyRequested"


_ = SnapshotEvent
# A failed backup returns to CreatedOnPrimary rather than CloudStack's Error: the data is still on primary and
# the backup can be tried again (CloudStack's snapshots stuck in BackingUp, #8423, are the cost of the other way).
# Error is left only by deleting; a snapshot in Error is never a revert source.
SNAPSHOT_STATES: StateMachine[SnapshotState, SnapshotEvent] = StateMachine(
    "snapshot",
    {
        SnapshotState.ALLOCATED: {
            _.CREATE_REQUESTED: SnapshotState.CREATING,
            _.DESTROY_REQUESTED: SnapshotState.DESTROYING,
        },
        SnapshotState.CREATING: {
            _.OPERATION_SUCCEEDED: SnapshotState.CREATED_ON_PRIMARY,
            _.OPERATION_FAILED: SnapshotState.ERROR,
        },
        SnapshotState.CREATED_ON_PRIMARY: {
            _.BACKUP_REQUESTED: SnapshotState.BACKING_UP,
            _.DESTROY_REQUESTED: SnapshotState.DESTROYING,
        },
        SnapshotState.BACKING_UP: {
            _.OPERATION_SUCCEEDED: SnapshotState.BACKED_UP,
            _.OPERATION_FAILED: SnapshotState.CREATED_ON_PRIMARY,
        },
        SnapshotState.BACKED_UP: {_.DESTROY_REQUESTED: SnapshotState.DESTROYING},
        SnapshotState.DESTROYING: {
            _.OPERATION_SUCCEEDED: SnapshotState.DESTROYED,
            _.OPERATION_FAILED: SnapshotState.ERROR,
        },
        SnapshotState.ERROR: {_.DESTROY_REQUESTED: SnapshotState.DESTROYING},
        SnapshotState.DESTROYED: {},
    },
)

# States in which a snapshot's data is whole and may be reverted to or built upon.
USABLE_SNAPSHOT_STATES = frozenset(
    {SnapshotState.CREATED_ON_PRIMARY, SnapshotState.BACKING_UP, SnapshotState.BACKED_UP}
)

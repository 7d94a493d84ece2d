"""The life cycle of a primary storage pool (CloudStack's StoragePoolStatus)."""

from enum import StrEnum

from schemas.storage import PoolState
from services.domain.states import StateMachine


class PoolEvent(StrEnum):
    """What happens to a pool: a user's request or the outcome of the work it started."""

    OPERATION_SUCCEEDED = "OperationSucceeded"
    OPERATION_FAILED = "OperationFailed"
    ENABLE_REQUESTED = "EnableRequested"
    DISABLE_REQUESTED = "DisableRequested"
    MAINTENANCE_REQUESTED = "MaintenanceRequested"
    CANCEL_MAINTENANCE_REQUESTED = "CancelMaintenanceRequested"
    DELETE_REQUESTED = "DeleteRequested"


_ = PoolEvent
# Maintenance can be asked for from Up, or again after it failed, as in CloudStack. A pool is deleted only once
# no allocation can race with the deletion: Disabled, in Maintenance, or stuck in ErrorInMaintenance. A failed
# add leaves nothing behind, hence Initial -> Removed; so does deleting a pool whose attach never answered (its
# agent was down): it never took a volume, and the detach sent with the deletion releases what the attach left.
# A failed cancel leaves the storage in doubt: ErrorInMaintenance, from which the operator retries either way.
POOL_STATES: StateMachine[PoolState, PoolEvent] = StateMachine(
    "pool",
    {
        PoolState.INITIAL: {
            _.OPERATION_SUCCEEDED: PoolState.UP,
            _.OPERATION_FAILED: PoolState.REMOVED,
            _.DELETE_REQUESTED: PoolState.REMOVED,
        },
        PoolState.UP: {
            _.DISABLE_REQUESTED: PoolState.DISABLED,
            _.MAINTENANCE_REQUESTED: PoolState.PREPARE_FOR_MAINTENANCE,
        },
        PoolState.DISABLED: {_.ENABLE_REQUESTED: PoolState.UP, _.DELETE_REQUESTED: PoolState.REMOVED},
        PoolState.PREPARE_FOR_MAINTENANCE: {
            _.OPERATION_SUCCEEDED: PoolState.MAINTENANCE,
            _.OPERATION_FAILED: PoolState.ERROR_IN_MAINTENANCE,
            _.CANCEL_MAINTENANCE_REQUESTED: PoolState.CANCEL_MAINTENANCE,
        },
        PoolState.MAINTENANCE: {
            _.CANCEL_MAINTENANCE_REQUESTED: PoolState.CANCEL_MAINTENANCE,
            _.DELETE_REQUESTED: PoolState.REMOVED,
        },
        PoolState.ERROR_IN_MAINTENANCE: {
            _.MAINTENANCE_REQUESTED: PoolState.PREPARE_FOR_MAINTENANCE,
            _.CANCEL_MAINTENANCE_REQUESTED: PoolState.CANCEL_MAINTENANCE,
            _.DELETE_REQUESTED: PoolState.REMOVED,
        },
        PoolState.CANCEL_MAINTENANCE: {
            _.OPERATION_SUCCEEDED: PoolState.UP,
            _.OPERATION_FAILED: PoolState.ERROR_IN_MAINTENANCE,
        },
        PoolState.REMOVED: {},
    },
)


def accepts_allocations(state: PoolState) -> bool:
    """Only an Up pool takes new volumes; every other state keeps its volumes but refuses new ones."""
    return state is PoolState.UP

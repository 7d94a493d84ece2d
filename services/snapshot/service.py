"""The snapshot service's handler tables: read these first.

Every handler takes the service's `SnapshotDeps` first; `consumer()` binds them and builds the consumer.
"""

from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any

from bus.ports import Handler, QueueKind, Transport, UnitOfWorkFactory
from bus.runtime import Consumer
from schemas import Message
from schemas.snapshot import (
    CreateSnapshot,
    CreateSnapshotPolicy,
    DeleteSnapshot,
    DeleteSnapshotPolicy,
    RevertSnapshot,
    SnapshotCreatedOnPool,
    SnapshotCreateOnPoolFailed,
    SnapshotDeletedOnPool,
    SnapshotDeleteOnPoolFailed,
    VolumeRevertedOnPool,
    VolumeRevertOnPoolFailed,
)
from schemas.snapshot_queries import ListSnapshotPolicies, ListSnapshots
from schemas.storage import PoolAdded, VolumeCreated, VolumeDeleted, VolumeResized, VolumeStateChanged
from schemas.vm import VmDescribed, VmStarted, VmStopped
from services.snapshot import outcomes, queries, read_model
from services.snapshot.deps import SnapshotDeps
from services.snapshot.handlers import create_snapshot, delete_snapshot, revert_snapshot
from services.snapshot.policies import create_snapshot_policy, delete_snapshot_policy

CONSUMER_NAME = "snapshot"

# A handler with the service's deps first; the message parameter is each handler's own class.
DepsHandler = Callable[..., Awaitable[Any]]

COMMAND_HANDLERS: Mapping[type[Message], DepsHandler] = {
    CreateSnapshot: create_snapshot,
    DeleteSnapshot: delete_snapshot,
    RevertSnapshot: revert_snapshot,
    CreateSnapshotPolicy: create_snapshot_policy,
    DeleteSnapshotPolicy: delete_snapshot_policy,
    # queries (request/reply)
    ListSnapshots: queries.list_snapshots,
    ListSnapshotPolicies: queries.list_snapshot_policies,
}

EVENT_HANDLERS: Mapping[type[Message], DepsHandler] = {
    # the agents' answers
    SnapshotCreatedOnPool: outcomes.on_snapshot_created,
    SnapshotCreateOnPoolFailed: outcomes.on_snapshot_create_failed,
    SnapshotDeletedOnPool: outcomes.on_snapshot_deleted,
    SnapshotDeleteOnPoolFailed: outcomes.on_snapshot_delete_failed,
    VolumeRevertedOnPool: outcomes.on_volume_reverted,
    VolumeRevertOnPoolFailed: outcomes.on_volume_revert_failed,
    # what the service knows of others
    PoolAdded: read_model.on_pool_added,
    VolumeCreated: read_model.on_volume_created,
    VolumeStateChanged: read_model.on_volume_state_changed,
    VolumeResized: read_model.on_volume_resized,
    VolumeDeleted: read_model.on_volume_deleted,
    VmStopped: read_model.on_vm_stopped,
    VmStarted: read_model.on_vm_started,
    VmDescribed: read_model.on_vm_described,
}


def handlers(deps: SnapshotDeps) -> dict[type[Message], Handler]:
    """Both tables with `deps` bound."""
    return {model: partial(handler, deps) for model, handler in {**COMMAND_HANDLERS, **EVENT_HANDLERS}.items()}


def consumer(
    transport: Transport,
    units: UnitOfWorkFactory,
    deps: SnapshotDeps,
    *,
    prefetch: int = 16,
    queue_kind: QueueKind = QueueKind.QUORUM,
) -> Consumer:
    """The service's consumer on queue `<ns>.snapshot`."""
    return Consumer(
        transport, units, name=CONSUMER_NAME, handlers=handlers(deps), prefetch=prefetch, queue_kind=queue_kind
    )

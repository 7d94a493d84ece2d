"""The snapshot service's handler tables: which message goes to which handler. Read this first.

Every handler is `handler(message, envelope, uow, deps)`, the service's `SnapshotDeps` last; `bootstrap` binds
them. The handlers live in one module per use case: `snapshots`, `backing_up` (the backup saga's steps), `policies`,
`queries`, `outcomes` (the agents' answers) and `read_model` (what the service knows of pools, volumes and VMs).
"""

from schemas import Message
from schemas.backup import BeginSnapshotBackup, EndSnapshotBackup
from schemas.chain import DescribeChain, RecordChainMerged
from schemas.migration import VolumePoolSwitched
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
from schemas.storage import PoolAdded, PoolStateChanged, VolumeCreated, VolumeDeleted, VolumeResized, VolumeStateChanged
from schemas.vm import VmDescribed, VmStarted, VmStopped
from services.runtime.handlers import ContextHandler
from services.snapshot import (
    backing_up,
    chain_handlers,
    outcomes,
    policies,
    queries,
    read_model,
    snapshots,
)
from services.snapshot.deps import SnapshotDeps

COMMAND_HANDLERS: dict[type[Message], ContextHandler[SnapshotDeps]] = {
    CreateSnapshot: snapshots.create_snapshot,
    DeleteSnapshot: snapshots.delete_snapshot,
    RevertSnapshot: snapshots.revert_snapshot,
    CreateSnapshotPolicy: policies.create_snapshot_policy,
    DeleteSnapshotPolicy: policies.delete_snapshot_policy,
    RecordChainMerged: chain_handlers.record_chain_merged,
    BeginSnapshotBackup: backing_up.begin_snapshot_backup,
    EndSnapshotBackup: backing_up.end_snapshot_backup,
    # queries (request/reply)
    DescribeChain: chain_handlers.describe_chain,
    ListSnapshots: queries.list_snapshots,
    ListSnapshotPolicies: queries.list_snapshot_policies,
}

EVENT_HANDLERS: dict[type[Message], ContextHandler[SnapshotDeps]] = {
    # the agents' answers
    SnapshotCreatedOnPool: outcomes.on_snapshot_created,
    SnapshotCreateOnPoolFailed: outcomes.on_snapshot_create_failed,
    SnapshotDeletedOnPool: outcomes.on_snapshot_deleted,
    SnapshotDeleteOnPoolFailed: outcomes.on_snapshot_delete_failed,
    VolumeRevertedOnPool: outcomes.on_volume_reverted,
    VolumeRevertOnPoolFailed: outcomes.on_volume_revert_failed,
    # what the service knows of others
    PoolAdded: read_model.on_pool_added,
    PoolStateChanged: read_model.on_pool_state_changed,
    VolumeCreated: read_model.on_volume_created,
    VolumeStateChanged: read_model.on_volume_state_changed,
    VolumeResized: read_model.on_volume_resized,
    VolumeDeleted: read_model.on_volume_deleted,
    VmStopped: read_model.on_vm_stopped,
    VmStarted: read_model.on_vm_started,
    VmDescribed: read_model.on_vm_described,
    VolumePoolSwitched: read_model.on_volume_pool_switched,
}

"""The agent's handler tables: which command goes to which handler. Read this first.

The agent runs the data-plane commands where the storage is, and the VM commands. Every handler is
`handler(command, envelope, uow, agent)`, the `Agent` last; `bootstrap` binds it. The handlers live in one module
per use case: `pools`, `volumes`, `copying`, `snapshots`, `coalescing`, `vms`, `backups`.
"""

from schemas import Message
from schemas.agent import (
    AttachPoolToHost,
    CollectPoolStats,
    CopyVolumeFromStore,
    CopyVolumeToStore,
    CreateVolumeOnPool,
    DeleteVolumeOnPool,
    DetachPoolFromHost,
    ResizeVolumeOnPool,
)
from schemas.backup_agent import (
    BackupSnapshotOnPool,
    CollectGarbageOnStore,
    DeleteBackupOnStore,
    RestoreBackupOnPool,
    VerifyBackupOnStore,
)
from schemas.chain import CoalesceVolumeOnPool
from schemas.migration import CopyVolumeBetweenPools, DeleteStagedCopy
from schemas.pool_settings import ReconfigurePoolOnHost
from schemas.snapshot import CreateSnapshotOnPool, DeleteSnapshotOnPool, RevertVolumeOnPool
from schemas.vm import DescribeVm, StartVm, StopVm
from services.agent import backups, coalescing, copying, direct_copies, pools, snapshots, staged_copies, vms, volumes
from services.agent.answering import Agent
from services.runtime.handlers import ContextHandler

COMMAND_HANDLERS: dict[type[Message], ContextHandler[Agent]] = {
    AttachPoolToHost: pools.attach_pool,
    ReconfigurePoolOnHost: pools.reconfigure_pool,
    DetachPoolFromHost: pools.detach_pool,
    CollectPoolStats: pools.collect_pool_stats,
    CreateVolumeOnPool: volumes.create_volume,
    DeleteVolumeOnPool: volumes.delete_volume,
    ResizeVolumeOnPool: volumes.resize_volume,
    CopyVolumeToStore: copying.copy_volume_to_store,
    CopyVolumeBetweenPools: direct_copies.copy_between_pools,
    CopyVolumeFromStore: copying.copy_volume_from_store,
    CreateSnapshotOnPool: snapshots.create_snapshot,
    RevertVolumeOnPool: snapshots.revert_volume,
    DeleteSnapshotOnPool: snapshots.delete_snapshot,
    StopVm: vms.stop_vm,
    StartVm: vms.start_vm,
    DescribeVm: vms.describe_vm,
    CoalesceVolumeOnPool: coalescing.coalesce_volume,
    BackupSnapshotOnPool: backups.backup_snapshot,
    RestoreBackupOnPool: backups.restore_backup,
    DeleteBackupOnStore: backups.delete_backup,
    VerifyBackupOnStore: backups.verify_backup,
    CollectGarbageOnStore: backups.collect_garbage,
    DeleteStagedCopy: staged_copies.delete_staged_copy,
}

# The agent follows no events: every command names the host or cluster it is for.
EVENT_HANDLERS: dict[type[Message], ContextHandler[Agent]] = {}

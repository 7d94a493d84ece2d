"""The storage service's handler tables: which message goes to which handler. Read this first.

Every handler is `handler(message, envelope, uow, storage)`, the `Storage` context last; `bootstrap` binds it.
"""

from schemas import Message
from schemas.agent import (
    PoolAttachedToHost,
    PoolAttachToHostFailed,
    PoolDetachedFromHost,
    PoolDetachFromHostFailed,
    PoolStatsFailed,
    PoolStatsReported,
    VolumeCreatedOnPool,
    VolumeCreateOnPoolFailed,
    VolumeDeletedOnPool,
    VolumeDeleteOnPoolFailed,
    VolumeResizedOnPool,
    VolumeResizeOnPoolFailed,
)
from schemas.hosts import HostHeartbeat, ListHosts
from schemas.migration import PlanMigration, SwitchVolumePool
from schemas.pool_settings import PoolReconfiguredOnHost, PoolReconfigureOnHostFailed, UpdatePool
from schemas.storage import (
    AddPool,
    BeginVolumeOperation,
    CancelPoolMaintenance,
    CreateVolume,
    DeletePool,
    DeleteVolume,
    DisablePool,
    EnablePool,
    EndVolumeOperation,
    MaintainPool,
    ResizeVolume,
)
from schemas.storage_queries import ListPools, ListVolumes
from services.runtime.handlers import ContextHandler
from services.storage import hosts, migration, pool_settings, pools, queries, resizes, volumes
from services.storage.context import Storage

COMMAND_HANDLERS: dict[type[Message], ContextHandler[Storage]] = {
    AddPool: pools.add_pool,
    EnablePool: pools.enable_pool,
    DisablePool: pools.disable_pool,
    MaintainPool: pools.maintain_pool,
    CancelPoolMaintenance: pools.cancel_maintenance,
    DeletePool: pools.delete_pool,
    UpdatePool: pool_settings.update_pool,
    CreateVolume: volumes.create_volume,
    DeleteVolume: volumes.delete_volume,
    ResizeVolume: resizes.resize_volume,
    BeginVolumeOperation: volumes.begin_operation,
    EndVolumeOperation: volumes.end_operation,
    PlanMigration: migration.plan_migration,
    SwitchVolumePool: migration.switch_volume_pool,
    ListPools: queries.list_pools,
    ListVolumes: queries.list_volumes,
    ListHosts: hosts.list_hosts,
}

EVENT_HANDLERS: dict[type[Message], ContextHandler[Storage]] = {
    PoolAttachedToHost: pools.pool_attached,
    PoolAttachToHostFailed: pools.pool_attach_failed,
    PoolDetachedFromHost: pools.pool_detached,
    PoolDetachFromHostFailed: pools.pool_detach_failed,
    PoolStatsReported: pools.pool_stats_reported,
    PoolStatsFailed: pools.pool_stats_failed,
    PoolReconfiguredOnHost: pool_settings.pool_reconfigured,
    PoolReconfigureOnHostFailed: pool_settings.pool_reconfigure_failed,
    VolumeCreatedOnPool: volumes.volume_created,
    VolumeCreateOnPoolFailed: volumes.volume_create_failed,
    VolumeDeletedOnPool: volumes.volume_deleted,
    VolumeDeleteOnPoolFailed: volumes.volume_delete_failed,
    VolumeResizedOnPool: resizes.volume_resized,
    VolumeResizeOnPoolFailed: resizes.volume_resize_failed,
    HostHeartbeat: hosts.host_heartbeat,
}

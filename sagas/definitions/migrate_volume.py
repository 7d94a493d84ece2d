"""Migrate a volume to another pool with a fallback through a zone-wide store (DESIGN §5).

Lock the volume. Ask, before anything changes: the storage service for the plan (refused for a volume that is not
Ready, a destination that is not Up, out of the VM's reach or hypervisor, or over a capacity threshold); the
snapshot service for the volume's chain (a volume with snapshots is refused: the staged copy carries only its
current content, so its snapshots could not move with it; Cinder refuses them too); the image service for a store
of the zone with room for the staged copy (named by its id: the image service hands each copy to the agent with
the store's configuration, which a saga's journal never holds).

Then hold the volume in Migrating (undone: Ready again); copy it out of the source pool into the store through the
source's agent (undone: delete the staged copy); copy it into the destination pool through the destination's
agent (undone: delete the destination copy); switch the volume to the destination copy in the storage service:
the pivot. Any failure before it undoes what was done, in reverse order: the source stays Ready and untouched, no
staged or destination copy is left. After it the volume is Ready on the destination, and the source copy and the
staged copy are deleted, retried forward; a saga that cannot finish ends STUCK with the reason (its lock kept).

Where one agent reaches both pools (the plan says `direct`, unless the command asked for the store), no store is
needed: that agent copies the volume from the source pool into the destination (undone: delete the destination
copy), and the rest is the same. A copy cut short (its agent killed, a plugin failing midway) is asked again: the
agents' copies are idempotent on the volume and the object. Native migration is planned where both pools' plugin
claims it; no agent command does one yet, so such a migration is staged, and the plan says why.
"""

from sagas import RetryPolicy, SagaContext, saga
from sagas.definitions.revert_vm import LOCK_WAIT, STEP_RETRY, STEP_TIMEOUT, UNDO_RETRY, reply_as, volume_resource
from schemas import Event
from schemas.agent import (
    AgentRoute,
    DeleteVolumeOnPool,
    VolumeCopiedFromStore,
    VolumeCopiedToStore,
    VolumeDeletedOnPool,
)
from schemas.chain import ChainDescribed, DescribeChain
from schemas.errors import FailedPrecondition, StrataError
from schemas.migration import (
    CopyVolumeBetweenPools,
    DropStagedCopy,
    FindStagingStore,
    MigrateVolume,
    MigrationMethod,
    MigrationPlanned,
    PlanMigration,
    StagedCopyDeleted,
    StageVolumeIn,
    StageVolumeOut,
    StagingStoreFound,
    SwitchVolumePool,
    VolumeCopiedBetweenPools,
    VolumeMigrated,
    VolumePoolSwitched,
)
from schemas.storage import BeginVolumeOperation, EndVolumeOperation, VolumeOperation, VolumeStateChanged

SAGA_NAME = "volume.migrate"
# CloudStack's copy.volume.wait is 10800 s: a copy of a big volume through a store takes that long at worst.
COPY_DEADLINE = 10800.0
# A copy cut short by its agent's restart or a plugin failure is asked again; the agents finish or redo it.
COPY_RETRY = RetryPolicy(
    attempts=8, backoff=0.5, multiplier=2.0, max_backoff=15.0, retry_on=("TRANSIENT", "INTERNAL", "ABORTED")
)


def staged_object_id(cmd: MigrateVolume) -> str:
    """The staged copy's name in the store (one per volume and destination, recognisable by an operator)."""
    return f"migrate-{cmd.volume_id.hex}-{cmd.pool_id.hex[:8]}"


@saga(SAGA_NAME, version=1)
async def migrate_volume(ctx: SagaContext, cmd: MigrateVolume) -> VolumeMigrated:
    """Move `cmd.volume_id` to pool `cmd.pool_id`, keeping its id."""
    await ctx.lock(volume_resource(cmd.volume_id), wait=LOCK_WAIT, lease=COPY_DEADLINE)
    plan = reply_as(
        await ctx.query(
            PlanMigration(volume_id=cmd.volume_id, pool_id=cmd.pool_id, staged=cmd.staged), timeout=STEP_TIMEOUT
        ),
        MigrationPlanned,
    )
    chain = reply_as(
        await ctx.query(DescribeChain(volume_id=cmd.volume_id), retry=STEP_RETRY, timeout=STEP_TIMEOUT),
        ChainDescribed,
    )
    if chain.nodes:
        raise FailedPrecondition(
            f"volume {cmd.volume_id} has {len(chain.nodes)} snapshots on its pool: a migration carries the volume's "
            "current content only, so they cannot move with it; delete them first (`strata snapshot delete`)",
            field="volume_id",
        )
    direct = plan.method is MigrationMethod.DIRECT
    staging = (
        None
        if direct
        else reply_as(
            await ctx.query(FindStagingStore(zone_id=plan.zone_id, size_bytes=plan.size_bytes), timeout=STEP_TIMEOUT),
            StagingStoreFound,
        )
    )
    await ctx.step(
        BeginVolumeOperation(volume_id=cmd.volume_id, operation=VolumeOperation.MIGRATE),
        compensate=EndVolumeOperation(volume_id=cmd.volume_id, operation=VolumeOperation.MIGRATE, succeeded=False),
        retry=STEP_RETRY,
        timeout=STEP_TIMEOUT,
        compensate_retry=UNDO_RETRY,
    )
    source: AgentRoute = {"host": plan.source_host, "cluster_id": plan.source_cluster_id}
    target: AgentRoute = {"host": plan.host, "cluster_id": plan.cluster_id}
    if staging is None:
        locator, size_bytes = await _copy_directly(ctx, cmd, plan, target)
    else:
        locator, size_bytes = await _copy_through(ctx, cmd, plan, staging, source=source, target=target)
    await ctx.step(
        SwitchVolumePool(volume_id=cmd.volume_id, pool_id=plan.pool_id, locator=locator),
        retry=STEP_RETRY,
        timeout=STEP_TIMEOUT,
    )
    await ctx.pivot()

    await ctx.step(
        EndVolumeOperation(volume_id=cmd.volume_id, operation=VolumeOperation.MIGRATE, succeeded=True),
        retry=UNDO_RETRY,
        timeout=STEP_TIMEOUT,
    )
    drop_source = ctx.step(
        DeleteVolumeOnPool(pool_id=plan.source_pool_id, volume_id=cmd.volume_id, **source),
        retry=UNDO_RETRY,
        timeout=STEP_TIMEOUT,
    )
    if staging is None:
        await drop_source
    else:
        forget_staged = DropStagedCopy(store_id=staging.store_id, object_id=staged_object_id(cmd), **target)
        await ctx.gather(drop_source, ctx.step(forget_staged, retry=UNDO_RETRY, timeout=STEP_TIMEOUT))
    return VolumeMigrated(
        volume_id=cmd.volume_id,
        source_pool_id=plan.source_pool_id,
        pool_id=plan.pool_id,
        method=MigrationMethod.DIRECT if staging is None else MigrationMethod.STAGED,
        size_bytes=size_bytes,
    )


async def _copy_directly(
    ctx: SagaContext, cmd: MigrateVolume, plan: MigrationPlanned, target: AgentRoute
) -> tuple[str, int]:
    """The agent that reaches both pools copies the volume; its (locator, size) on the destination."""
    drop_target = DeleteVolumeOnPool(pool_id=plan.pool_id, volume_id=cmd.volume_id, **target)
    copy = CopyVolumeBetweenPools(
        source_pool_id=plan.source_pool_id,
        pool_id=plan.pool_id,
        volume_id=cmd.volume_id,
        deadline_seconds=COPY_DEADLINE,
        host=plan.direct_host,
        cluster_id=plan.direct_cluster_id,
    )
    try:
        copied = reply_as(
            await ctx.step(
                copy, compensate=drop_target, retry=COPY_RETRY, timeout=COPY_DEADLINE, compensate_retry=UNDO_RETRY
            ),
            VolumeCopiedBetweenPools,
        )
    except StrataError:
        # A copy that failed for good may have left part of the destination copy: it goes before the rest's undo.
        await ctx.step(drop_target, retry=UNDO_RETRY, timeout=STEP_TIMEOUT)
        raise
    return copied.locator, copied.size_bytes


async def _copy_through(
    ctx: SagaContext,
    cmd: MigrateVolume,
    plan: MigrationPlanned,
    staging: StagingStoreFound,
    *,
    source: AgentRoute,
    target: AgentRoute,
) -> tuple[str, int]:
    """Copy out to the staging store through the source's agent, then in through the destination's; the copy's
    (locator, size) on the destination."""
    object_id = staged_object_id(cmd)
    forget_staged = DropStagedCopy(store_id=staging.store_id, object_id=object_id, **target)
    drop_target = DeleteVolumeOnPool(pool_id=plan.pool_id, volume_id=cmd.volume_id, **target)
    try:
        copied_out = reply_as(
            await ctx.step(
                StageVolumeOut(
                    store_id=staging.store_id,
                    object_id=object_id,
                    pool_id=plan.source_pool_id,
                    volume_id=cmd.volume_id,
                    deadline_seconds=COPY_DEADLINE,
                    **source,
                ),
                compensate=forget_staged,
                retry=COPY_RETRY,
                timeout=COPY_DEADLINE,
                compensate_retry=UNDO_RETRY,
            ),
            VolumeCopiedToStore,
        )
    except StrataError:
        # A copy that failed for good may have left part of an object: it goes before the undo of the rest.
        await ctx.step(forget_staged, retry=UNDO_RETRY, timeout=STEP_TIMEOUT)
        raise
    try:
        copied_in = reply_as(
            await ctx.step(
                StageVolumeIn(
                    store_id=staging.store_id,
                    object_id=object_id,
                    pool_id=plan.pool_id,
                    volume_id=cmd.volume_id,
                    checksum=copied_out.checksum,
                    deadline_seconds=COPY_DEADLINE,
                    **target,
                ),
                compensate=drop_target,
                retry=COPY_RETRY,
                timeout=COPY_DEADLINE,
                compensate_retry=UNDO_RETRY,
            ),
            VolumeCopiedFromStore,
        )
    except StrataError:
        await ctx.step(drop_target, retry=UNDO_RETRY, timeout=STEP_TIMEOUT)
        raise
    return copied_in.locator, copied_in.size_bytes


# The domain events participants may answer this saga's steps with (besides the generic step replies).
REPLY_TYPES: tuple[type[Event], ...] = (
    MigrationPlanned,
    ChainDescribed,
    StagingStoreFound,
    VolumeStateChanged,
    VolumeCopiedToStore,
    VolumeCopiedFromStore,
    VolumeCopiedBetweenPools,
    VolumePoolSwitched,
    VolumeDeletedOnPool,
    StagedCopyDeleted,
)

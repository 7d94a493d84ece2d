"""Coalesce a volume's delta chain (DESIGN §5): merge each hidden snapshot (deleted, its data kept because a child
needs it) into its only child, update the chain, give the space back.

Lock the volume, waiting behind whatever holds it (a revert, a backup read, a migration: housekeeping yields to
users' operations and is never the reason one is refused); ask the snapshot service for the chain's pending
merges; have the pool's agent merge them (the plugin measures the room first, and each merge's on-disk switch is a
rename, so a crash before it changes nothing and a call after a crash finishes what it finds half done); that merge
is the pivot. After it the snapshot service records the merged chain, retried forward until done.

A merge the pool refuses (no room) fails the saga with nothing to undo; a merge done on the pool but not yet
recorded reads the same data, and the next coalesce records it.
"""

from sagas import RetryPolicy, SagaContext, saga
from sagas.definitions.revert_vm import STEP_RETRY, STEP_TIMEOUT, UNDO_RETRY, reply_as, volume_resource
from schemas import Event
from schemas.chain import (
    ChainCoalesced,
    ChainDescribed,
    ChainMergeRecorded,
    CoalesceChain,
    CoalesceVolumeOnPool,
    DescribeChain,
    RecordChainMerged,
    VolumeCoalescedOnPool,
)

SAGA_NAME = "snapshot.chain.coalesce"
# A coalesce waits in line for the volume as long as a user's operation may hold it (a migration of a big volume).
HOUSEKEEPING_LOCK_WAIT = 6 * 3600.0
# Merging copies a delta's data: minutes for a big one. A merge cut short (the agent restarted, a crash at a fault
# point) is asked again: the plugin finishes the merge it finds half done.
MERGE_TIMEOUT = 1800.0
MERGE_RETRY = RetryPolicy(
    attempts=10, backoff=0.5, multiplier=2.0, max_backoff=15.0, retry_on=("TRANSIENT", "INTERNAL", "ABORTED")
)


@saga(SAGA_NAME, version=1)
async def coalesce_chain(ctx: SagaContext, cmd: CoalesceChain) -> ChainCoalesced:
    """Merge the hidden snapshots of `cmd.volume_id` into their only children and record the shorter chain."""
    await ctx.lock(volume_resource(cmd.volume_id), wait=HOUSEKEEPING_LOCK_WAIT, lease=MERGE_TIMEOUT)
    described = reply_as(
        await ctx.query(DescribeChain(volume_id=cmd.volume_id), retry=STEP_RETRY, timeout=STEP_TIMEOUT), ChainDescribed
    )
    if not described.pending and not described.orphans:
        return ChainCoalesced(volume_id=cmd.volume_id)
    freed = 0
    if described.pending:
        route = {"host": described.host} if described.host else {"cluster_id": described.cluster_id}
        merged = reply_as(
            await ctx.step(
                CoalesceVolumeOnPool(pool_id=described.pool_id, volume_id=cmd.volume_id, **route),
                retry=MERGE_RETRY,
                timeout=MERGE_TIMEOUT,
            ),
            VolumeCoalescedOnPool,
        )
        freed = max(0, merged.allocated_before - merged.allocated_after)
    await ctx.pivot()
    recorded = reply_as(
        await ctx.step(RecordChainMerged(volume_id=cmd.volume_id), retry=UNDO_RETRY, timeout=STEP_TIMEOUT),
        ChainMergeRecorded,
    )
    return ChainCoalesced(volume_id=cmd.volume_id, merged=recorded.merged, freed_bytes=freed)


# The domain events participants may answer this saga's steps with (besides the generic step replies).
REPLY_TYPES: tuple[type[Event], ...] = (ChainDescribed, VolumeCoalescedOnPool, ChainMergeRecorded)

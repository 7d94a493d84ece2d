"""Chains: describe one, hide a deleted snapshot that a child still needs, ask for a coalesce when the chain needs
one (a middle snapshot deleted, or a chain past `snapshot.delta.max` with hidden data), and record a coalesce the
pool has done."""

from uuid import UUID

from bus.ports import UnitOfWork
from schemas import Envelope
from schemas.chain import ChainDescribed, ChainMergeRecorded, CoalesceChain, DescribeChain, RecordChainMerged
from services.domain.chains import longest_delta_run, needs_coalescing, plan_delete
from services.snapshot import chain_store
from services.snapshot import repository as repo
from services.snapshot.deps import SnapshotDeps
from services.snapshot.requests import PRODUCER, Requester, answer


async def describe_chain(
    query: DescribeChain, envelope: Envelope, uow: UnitOfWork, deps: SnapshotDeps
) -> ChainDescribed:
    """The volume's chain with its pending merges (a request's reply, or a saga step's)."""
    stored = await chain_store.load_chain(uow.connection, query.volume_id)
    pool = await repo.get_pool(uow.connection, stored.volume.pool_id)
    described = chain_store.describe(stored, pool, deps.delta_max)
    if envelope.saga_id is not None:
        answer(uow, Requester.of(envelope), described)
    return described


async def record_chain_merged(
    command: RecordChainMerged, envelope: Envelope, uow: UnitOfWork, deps: SnapshotDeps
) -> ChainMergeRecorded:
    """The pool merged every pending merge: update the chain to match (again: nothing left to change)."""
    merged = await chain_store.record_merges(uow.connection, command.volume_id)
    recorded = ChainMergeRecorded(volume_id=command.volume_id, merged=tuple(merged))
    answer(uow, Requester.of(envelope), recorded)
    return recorded


async def hide_if_needed(uow: UnitOfWork, snapshot: repo.SnapshotRow) -> bool:
    """A snapshot's data is deleted on the pool: keep it hidden if a child needs it, forget the hidden ancestors
    it was the last dependant of; return whether its data waits for a merge."""
    stored = await chain_store.load_chain(
        uow.connection, snapshot.volume_id, also_live=frozenset({snapshot.snapshot_id})
    )
    if snapshot.snapshot_id not in stored.chain.nodes or stored.chain.nodes[snapshot.snapshot_id].hidden:
        return snapshot.snapshot_id in stored.hidden
    plan = plan_delete(stored.chain, snapshot.snapshot_id)
    await chain_store.set_hidden(uow.connection, list(plan.hide), True)
    await chain_store.set_hidden(uow.connection, [s for s in plan.delete_data if s in stored.hidden], False)
    return bool(plan.hide)


async def ask_for_coalesce(
    uow: UnitOfWork, requester: Requester, volume_id: UUID, reason: str, *, past_delta_max: int | None = None
) -> bool:
    """Start a coalesce of the volume if its chain needs one (and, with `past_delta_max`, only if a run of deltas
    has reached it); return whether one was asked for."""
    stored = await chain_store.load_chain(uow.connection, volume_id)
    if not needs_coalescing(stored.chain):
        return False
    if past_delta_max is not None and longest_delta_run(stored.chain) < past_delta_max:
        return False
    uow.emit(
        Envelope.wrap(
            CoalesceChain(volume_id=volume_id, reason=reason),
            correlation_id=requester.correlation_id,
            producer=PRODUCER,
        )
    )
    return True

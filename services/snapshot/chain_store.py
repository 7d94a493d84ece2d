"""A volume's chain as the snapshot service keeps it: live snapshots and hidden ones (deleted, data kept for a
child), what the live volume is layered on, and the changes a merge or a deletion makes to it."""

from dataclasses import dataclass
from uuid import UUID

from schemas.chain import ChainDescribed, ChainNodeInfo, PendingMerge
from schemas.snapshot import SnapshotKind
from services.domain.chains import (
    Chain,
    ChainNode,
    CoalesceTask,
    coalesce_tasks,
    longest_delta_run,
    orphaned_hidden,
)
from services.domain.snapshots import USABLE_SNAPSHOT_STATES
from services.snapshot import repository as repo
from services.snapshot.repository import Connection


@dataclass(frozen=True, slots=True)
class StoredChain:
    """The chain and the rows it was built from."""

    chain: Chain
    rows: dict[UUID, repo.SnapshotRow]
    hidden: frozenset[UUID]
    volume: repo.VolumeRow


async def hidden_ids(connection: Connection, volume_id: UUID) -> frozenset[UUID]:
    """The volume's hidden snapshots."""
    rows = await connection.fetch(
        "SELECT snapshot_id FROM snapshot.snapshots WHERE volume_id = $1 AND hidden", volume_id
    )
    return frozenset(row["snapshot_id"] for row in rows)


async def load_chain(
    connection: Connection, volume_id: UUID, *, also_live: frozenset[UUID] = frozenset()
) -> StoredChain:
    """The volume's chain: usable snapshots, hidden ones, and `also_live` (a snapshot being deleted right now)."""
    volume = await repo.get_volume(connection, volume_id)
    hidden = await hidden_ids(connection, volume_id)
    rows = {
        row.snapshot_id: row
        for row in await repo.snapshots_of_volume(connection, volume_id)
        if row.state in USABLE_SNAPSHOT_STATES or row.snapshot_id in hidden or row.snapshot_id in also_live
    }
    nodes = [
        ChainNode(row.snapshot_id, row.kind, row.created_at, row.parent_id, row.snapshot_id in hidden)
        for row in rows.values()
    ]
    base = volume.base_snapshot_id if volume.base_snapshot_id in rows else None
    return StoredChain(Chain(nodes, volume_parent_id=base), rows, hidden, volume)


def describe(stored: StoredChain, pool: repo.PoolRow, delta_max: int) -> ChainDescribed:
    """The chain as the `snapshot.chain.describe` query answers it."""
    chain = stored.chain
    return ChainDescribed(
        volume_id=stored.volume.volume_id,
        pool_id=pool.pool_id,
        **pool.route(),
        base_snapshot_id=chain.volume_parent_id,
        nodes=tuple(
            ChainNodeInfo(
                snapshot_id=row.snapshot_id,
                name=row.name,
                kind=row.kind,
                state=row.state,
                parent_id=row.parent_id,
                hidden=row.snapshot_id in stored.hidden,
                physical_size_bytes=row.physical_size_bytes,
            )
            for row in sorted(stored.rows.values(), key=lambda r: (r.created_at, r.snapshot_id))
        ),
        pending=tuple(PendingMerge(hidden_id=t.hidden_id, child_id=t.child_id) for t in coalesce_tasks(chain)),
        orphans=tuple(orphaned_hidden(chain)),
        longest_delta_run=longest_delta_run(chain),
        delta_max=delta_max,
    )


async def set_hidden(connection: Connection, snapshot_ids: list[UUID], hidden: bool) -> None:
    """Mark snapshots hidden (data kept for a child) or not (data gone)."""
    if snapshot_ids:
        await connection.execute(
            "UPDATE snapshot.snapshots SET hidden = $2, updated_at = now() WHERE snapshot_id = ANY($1::uuid[])",
            snapshot_ids,
            hidden,
        )


async def apply_merge(connection: Connection, stored: StoredChain, task: CoalesceTask) -> None:
    """Record that the hidden snapshot's data now lives in its child: the child takes its parent (and becomes a
    FULL if the hidden one was), or the live volume is layered on that parent."""
    hidden = stored.chain.nodes[task.hidden_id]
    if task.child_id is None:
        await repo.set_volume_base(connection, stored.volume.volume_id, hidden.parent_id)
    else:
        kind = SnapshotKind.FULL if hidden.kind is SnapshotKind.FULL else stored.chain.nodes[task.child_id].kind
        await connection.execute(
            "UPDATE snapshot.snapshots SET parent_id = $2, kind = $3, updated_at = now() WHERE snapshot_id = $1",
            task.child_id,
            hidden.parent_id,
            kind.value,
        )
    await set_hidden(connection, [task.hidden_id], False)


async def record_merges(connection: Connection, volume_id: UUID) -> list[UUID]:
    """Apply every pending merge and forget hidden data nothing needs, one change at a time (a merge can make
    the next possible); return the snapshots whose data was merged or dropped."""
    merged: list[UUID] = []
    while True:
        stored = await load_chain(connection, volume_id)
        tasks = coalesce_tasks(stored.chain)
        if tasks:
            await apply_merge(connection, stored, tasks[0])
            merged.append(tasks[0].hidden_id)
            continue
        orphans = orphaned_hidden(stored.chain)
        if not orphans:
            return merged
        await set_hidden(connection, orphans, False)
        merged.extend(orphans)

"""Snapshot chains: full or delta for the next snapshot, what retention deletes, and what needs coalescing.

A chain is a tree of snapshots of one volume: a FULL stands alone, a DELTA holds what changed since its parent.
Where a plugin layers the live volume on its newest snapshot (qcow2 backing files), the volume is one more child
of that snapshot, named by `volume_parent_id`.

Deleting a snapshot that others still depend on cannot drop its data: the snapshot is hidden (Destroyed for
users, data kept) and, once it has a single child, a coalesce merges the two (DESIGN §5). Only a node with a
single child may be merged: a base shared by several children must not change. A chain longer than
`snapshot.delta.max` is not shortened by merging live snapshots (each is a restore point a user asked for); the
next snapshot is taken FULL instead, which bounds the chain again.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from schemas.errors import FailedPrecondition, InvalidArgument, NotFound
from schemas.snapshot import SnapshotKind

DELTA_MAX_SETTING = "snapshot.delta.max"


@dataclass(frozen=True, slots=True)
class ChainNode:
    """One snapshot whose data is on the pool.

    Attributes:
        parent_id: The snapshot a DELTA is based on; None for a FULL.
        hidden: Deleted by a user but kept because something still depends on its data.
    """

    snapshot_id: UUID
    kind: SnapshotKind
    created_at: datetime
    parent_id: UUID | None = None
    hidden: bool = False


@dataclass(frozen=True, slots=True)
class NextSnapshot:
    """How to take the next snapshot of a volume, and why."""

    kind: SnapshotKind
    parent_id: UUID | None
    reason: str


@dataclass(frozen=True, slots=True)
class CoalesceTask:
    """Merge a hidden snapshot with its only child. `child_id` None means the child is the live volume."""

    hidden_id: UUID
    child_id: UUID | None


@dataclass(frozen=True, slots=True)
class DeletePlan:
    """What deleting one snapshot takes.

    Attributes:
        hide: Snapshots to keep hidden (data kept) because something depends on them.
        delete_data: Snapshots whose data can go now, children before parents.
        coalesce: Merges that become possible.
    """

    hide: tuple[UUID, ...]
    delete_data: tuple[UUID, ...]
    coalesce: tuple[CoalesceTask, ...]


class Chain:
    """The snapshots of one volume, with their parent links checked."""

    def __init__(self, nodes: Iterable[ChainNode], volume_parent_id: UUID | None = None) -> None:
        self.nodes = {node.snapshot_id: node for node in nodes}
        self.volume_parent_id = volume_parent_id
        if volume_parent_id is not None and volume_parent_id not in self.nodes:
            raise InvalidArgument(f"the volume is layered on snapshot {volume_parent_id}, which is not in its chain")
        for node in self.nodes.values():
            if node.kind is SnapshotKind.DELTA and node.parent_id is None:
                raise InvalidArgument(f"delta snapshot {node.snapshot_id} has no parent", field="parent_id")
            if node.kind is SnapshotKind.FULL and node.parent_id is not None:
                raise InvalidArgument(f"full snapshot {node.snapshot_id} names a parent", field="parent_id")

    def newest(self) -> ChainNode | None:
        """The most recent snapshot (hidden ones included: their data is still there to build on)."""
        if not self.nodes:
            return None
        return max(self.nodes.values(), key=lambda node: (node.created_at, node.snapshot_id))

    def children(self, snapshot_id: UUID) -> list[UUID | None]:
        """The snapshots based on `snapshot_id`, plus None when the live volume is layered on it."""
        found: list[UUID | None] = [node.snapshot_id for node in self.nodes.values() if node.parent_id == snapshot_id]
        if self.volume_parent_id == snapshot_id:
            found.append(None)
        return found

    def deltas_since_full(self, snapshot_id: UUID) -> int | None:
        """Deltas from `snapshot_id` back to its FULL (0 for a FULL), or None when a parent is missing."""
        count = 0
        seen: set[UUID] = set()
        node = self.nodes.get(snapshot_id)
        while node is not None and node.kind is SnapshotKind.DELTA:
            if node.snapshot_id in seen:
                raise FailedPrecondition(f"snapshot chain has a cycle through {node.snapshot_id}")
            seen.add(node.snapshot_id)
            count += 1
            node = self.nodes.get(node.parent_id) if node.parent_id else None
        return count if node is not None else None


def plan_next_snapshot(chain: Chain, *, delta_max: int, supports_delta: bool) -> NextSnapshot:
    """Decide FULL or DELTA for the next snapshot: a delta on what the volume's data sits on, unless the run of
    deltas since the last full has reached `delta_max`."""
    if delta_max < 0:
        raise InvalidArgument(f"{DELTA_MAX_SETTING} must be 0 or more, not {delta_max}", field=DELTA_MAX_SETTING)
    newest = chain.newest()
    if newest is None:
        return NextSnapshot(SnapshotKind.FULL, None, "first snapshot of the volume")
    if not supports_delta:
        return NextSnapshot(SnapshotKind.FULL, None, "the pool's plugin does not take delta snapshots")
    # The live data sits on the snapshot the volume is layered on (after a revert, an older one), else the newest.
    parent_id = chain.volume_parent_id if chain.volume_parent_id is not None else newest.snapshot_id
    deltas = chain.deltas_since_full(parent_id)
    if deltas is None:
        return NextSnapshot(SnapshotKind.FULL, None, "the chain is broken (a parent is missing)")
    if deltas >= delta_max:
        return NextSnapshot(
            SnapshotKind.FULL, None, f"{deltas} deltas since the last full reach {DELTA_MAX_SETTING} {delta_max}"
        )
    return NextSnapshot(SnapshotKind.DELTA, parent_id, f"delta {deltas + 1} of at most {delta_max} since the last full")


def retention_victims(snapshots: Sequence[tuple[UUID, datetime]], max_snaps: int) -> list[UUID]:
    """The oldest of a policy's snapshots beyond the newest `max_snaps`, oldest first."""
    if max_snaps < 1:
        raise InvalidArgument(f"max_snaps must be at least 1, not {max_snaps}", field="max_snaps")
    ordered = sorted(snapshots, key=lambda item: (item[1], item[0]))
    return [snapshot_id for snapshot_id, _ in ordered[: max(0, len(ordered) - max_snaps)]]


def plan_delete(chain: Chain, snapshot_id: UUID) -> DeletePlan:
    """Decide what deleting `snapshot_id` takes: drop data now, hide it, and which merges become possible."""
    target = chain.nodes.get(snapshot_id)
    if target is None:
        raise NotFound(f"snapshot {snapshot_id} is not in the volume's chain", field="snapshot_id")
    if target.hidden:
        raise FailedPrecondition(f"snapshot {snapshot_id} is already deleted", field="snapshot_id")
    children = chain.children(snapshot_id)
    if children:
        merge = (CoalesceTask(snapshot_id, children[0]),) if len(children) == 1 else ()
        return DeletePlan(hide=(snapshot_id,), delete_data=(), coalesce=merge)
    # A leaf goes at once; hidden ancestors it was the last dependant of go with it, or become mergeable.
    delete_data = [snapshot_id]
    coalesce: list[CoalesceTask] = []
    parent_id = target.parent_id
    while parent_id is not None:
        parent = chain.nodes.get(parent_id)
        if parent is None or not parent.hidden:
            break
        remaining = [child for child in chain.children(parent_id) if child not in delete_data]
        if not remaining:
            delete_data.append(parent_id)
            parent_id = parent.parent_id
            continue
        if len(remaining) == 1:
            coalesce.append(CoalesceTask(parent_id, remaining[0]))
        break
    return DeletePlan(hide=(), delete_data=tuple(delete_data), coalesce=tuple(coalesce))


def coalesce_tasks(chain: Chain) -> list[CoalesceTask]:
    """Every merge the chain needs now: each hidden snapshot with exactly one child, oldest first."""
    tasks: list[CoalesceTask] = []
    for node in sorted(chain.nodes.values(), key=lambda item: (item.created_at, item.snapshot_id)):
        if node.hidden:
            children = chain.children(node.snapshot_id)
            if len(children) == 1:
                tasks.append(CoalesceTask(node.snapshot_id, children[0]))
    return tasks


def orphaned_hidden(chain: Chain) -> list[UUID]:
    """Hidden snapshots nothing depends on any more: their data can be deleted."""
    return [node.snapshot_id for node in chain.nodes.values() if node.hidden and not chain.children(node.snapshot_id)]


def longest_delta_run(chain: Chain) -> int:
    """The most deltas between a FULL and any snapshot of the chain (a branch with a missing parent counts 0)."""
    longest = 0
    for node in chain.nodes.values():
        longest = max(longest, chain.deltas_since_full(node.snapshot_id) or 0)
    return longest


def needs_coalescing(chain: Chain) -> bool:
    """Tell whether a coalesce saga has work on this chain (a merge, or hidden data nothing needs)."""
    return bool(coalesce_tasks(chain) or orphaned_hidden(chain))

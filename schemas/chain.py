"""Messages of delta-chain coalescing (DESIGN §5): the saga's input and outcome, the snapshot service's view of a
chain, and the agent's merge on the pool."""

from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from schemas.agent import AgentCommand
from schemas.envelope import Command, Event
from schemas.errors import ErrorInfo
from schemas.registry import message
from schemas.snapshot import SnapshotKind, SnapshotState


class ChainNodeInfo(BaseModel):
    """One snapshot of a volume's chain whose data is on the pool (a live one, or a hidden one kept for its child)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    snapshot_id: UUID
    name: str
    kind: SnapshotKind
    state: SnapshotState
    parent_id: UUID | None = Field(default=None, description="The snapshot a DELTA is based on.")
    hidden: bool = Field(default=False, description="Deleted by a user; its data is kept because a child needs it.")
    physical_size_bytes: int = Field(ge=0, description="Bytes it occupied on the storage when it was taken.")


class PendingMerge(BaseModel):
    """A hidden snapshot and its only child, which a coalesce merges. `child_id` None: the child is the volume."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hidden_id: UUID
    child_id: UUID | None = None


@message("snapshot.chain.describe")
class DescribeChain(Command):
    """A query: a volume's snapshot chain as the snapshot service knows it, with the merges it needs."""

    volume_id: UUID


@message("snapshot.chain.described")
class ChainDescribed(Event):
    """A volume's chain: its nodes, what the live volume is layered on, and the merges pending."""

    volume_id: UUID
    pool_id: UUID
    host: str | None = Field(default=None, description="Route the pool's agent commands to this host's agent...")
    cluster_id: str | None = Field(default=None, description="...or to any agent of this cluster.")
    base_snapshot_id: UUID | None = Field(default=None, description="The snapshot the live volume is layered on.")
    nodes: tuple[ChainNodeInfo, ...] = ()
    pending: tuple[PendingMerge, ...] = Field(default=(), description="Merges a coalesce would do now.")
    orphans: tuple[UUID, ...] = Field(default=(), description="Hidden snapshots nothing needs any more.")
    longest_delta_run: int = Field(default=0, ge=0, description="The most deltas between a full and a snapshot.")
    delta_max: int = Field(default=16, ge=0, description="`snapshot.delta.max`.")


@message("snapshot.chain.coalesce")
class CoalesceChain(Command):
    """Merge a volume's hidden snapshots into their only children and reclaim their space (the coalesce saga)."""

    volume_id: UUID
    reason: str = Field(default="asked by an operator", max_length=500, description="Why the coalesce runs.")


@message("snapshot.chain.coalesced")
class ChainCoalesced(Event):
    """A coalesce finished: the merged snapshots' data is folded into their children, the space given back."""

    volume_id: UUID
    merged: tuple[UUID, ...] = Field(default=(), description="Hidden snapshots whose data was merged or dropped.")
    freed_bytes: int = Field(default=0, ge=0, description="Bytes the volume's layers took less on the pool after.")


@message("snapshot.chain.coalesce.failed")
class ChainCoalesceFailed(Event):
    """A coalesce did not finish; the chain is as it was (before the merge) or finishes later (STUCK after it)."""

    volume_id: UUID
    error: ErrorInfo


@message("snapshot.chain.record_merged")
class RecordChainMerged(Command):
    """Tell the snapshot service that the pool merged every pending merge of the volume: update the chain."""

    volume_id: UUID


@message("snapshot.chain.merged_recorded")
class ChainMergeRecorded(Event):
    """The snapshot service's chain agrees with the pool again: the merged snapshots hold no data."""

    volume_id: UUID
    merged: tuple[UUID, ...] = ()


@message("agent.volume.coalesce")
class CoalesceVolumeOnPool(AgentCommand):
    """Merge every hidden layer of the volume that has a single child into it (room measured first)."""

    pool_id: UUID
    volume_id: UUID


@message("agent.volume.coalesced")
class VolumeCoalescedOnPool(Event):
    """The volume's chain on the pool after the merges."""

    pool_id: UUID
    volume_id: UUID
    layers: int = Field(ge=0, description="Layers of the volume's chain after, the active one included.")
    hidden_layers: int = Field(ge=0, description="Layers kept without a live snapshot (a branch point).")
    allocated_before: int = Field(ge=0, description="Bytes the chain's layers took on the pool before.")
    allocated_after: int = Field(ge=0, description="Bytes they take after.")


@message("agent.volume.coalesce.failed")
class VolumeCoalesceOnPoolFailed(Event):
    """The merge did not happen (or stopped before its switch, which changes nothing)."""

    pool_id: UUID
    volume_id: UUID
    error: ErrorInfo

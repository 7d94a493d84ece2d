"""Queries of the snapshot service over request/reply (`strata snapshot list`, `strata snapshot-policy list`)."""

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from schemas.envelope import Command, Event
from schemas.registry import message
from schemas.snapshot import IntervalType, SnapshotKind, SnapshotState


class SnapshotInfo(BaseModel):
    """A snapshot as `strata snapshot list|show` shows it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    snapshot_id: UUID
    volume_id: UUID
    name: str
    state: SnapshotState
    kind: SnapshotKind
    parent_id: UUID | None = Field(default=None, description="The snapshot a DELTA is based on.")
    policy_id: UUID | None = Field(default=None, description="The policy that took it, if one did.")
    vm_snapshot_id: UUID | None = Field(default=None, description="The VM snapshot it belongs to, if any.")
    size_bytes: int = Field(ge=0, description="Virtual size of the volume when it was taken.")
    physical_size_bytes: int = Field(ge=0, description="Bytes it occupies on the storage.")
    created_at: datetime
    error: str | None = Field(default=None, description="Why it is in Error, if it is.")


class SnapshotPolicyInfo(BaseModel):
    """A snapshot policy as `strata snapshot-policy list` shows it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    policy_id: UUID
    volume_id: UUID
    interval_type: IntervalType
    schedule: str
    timezone: str
    max_snaps: int = Field(ge=1)
    next_run_at: datetime = Field(description="When it runs next (UTC).")
    last_run_at: datetime | None = Field(default=None, description="When it last ran, if it has.")


@message("snapshot.list")
class ListSnapshots(Command):
    """A query: snapshots, newest first, of one volume or VM snapshot, or one snapshot; Destroyed only when asked."""

    snapshot_id: UUID | None = Field(default=None, description="Only this snapshot (`strata snapshot show`).")
    volume_id: UUID | None = None
    vm_snapshot_id: UUID | None = None
    include_destroyed: bool = False
    limit: int = Field(default=500, ge=1, le=10_000)


@message("snapshot.listed")
class SnapshotsListed(Event):
    """The answer to `snapshot.list`."""

    snapshots: tuple[SnapshotInfo, ...] = ()


@message("snapshot_policy.list")
class ListSnapshotPolicies(Command):
    """A query: the snapshot policies, of one volume or all."""

    volume_id: UUID | None = None


@message("snapshot_policy.listed")
class SnapshotPoliciesListed(Event):
    """The answer to `snapshot_policy.list`."""

    policies: tuple[SnapshotPolicyInfo, ...] = ()

"""Messages of the snapshot domain: volume snapshots, VM snapshots, snapshot policies, and the agent's part.

A snapshot is FULL or a DELTA on its parent; chains hold at most `snapshot.delta.max` deltas between fulls.
Reverting a volume needs the volume Ready and its VM stopped; reverting a VM takes every volume back together.
"""

from datetime import datetime
from enum import StrEnum
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.agent import AgentCommand
from schemas.envelope import Command, Event
from schemas.errors import ErrorInfo
from schemas.registry import message
from schemas.storage import NAME_PATTERN


class SnapshotState(StrEnum):
    """A snapshot's state, with CloudStack's names (DESIGN §7)."""

    ALLOCATED = "Allocated"
    CREATING = "Creating"
    CREATED_ON_PRIMARY = "CreatedOnPrimary"
    BACKING_UP = "BackingUp"
    BACKED_UP = "BackedUp"
    DESTROYING = "Destroying"
    DESTROYED = "Destroyed"
    ERROR = "Error"


class SnapshotKind(StrEnum):
    """A FULL snapshot stands alone; a DELTA holds only what changed since its parent."""

    FULL = "full"
    DELTA = "delta"


class IntervalType(StrEnum):
    """How often a snapshot policy runs; each has its own schedule format (CloudStack's)."""

    HOURLY = "HOURLY"
    DAILY = "DAILY"
    WEEKLY = "WEEKLY"
    MONTHLY = "MONTHLY"


class VolumeSnapshotPair(BaseModel):
    """One volume of a VM and the snapshot of it that belongs to a VM snapshot."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    volume_id: UUID
    snapshot_id: UUID


# ------------------------------------------------------------------------------------------ volume snapshots


@message("snapshot.create")
class CreateSnapshot(Command):
    """Take a snapshot of a Ready volume; full or delta is decided from the volume's chain."""

    snapshot_id: UUID = Field(description="The caller's id for the snapshot (the idempotency key).")
    volume_id: UUID
    name: str = Field(pattern=NAME_PATTERN, description="Operator-facing name.")
    policy_id: UUID | None = Field(default=None, description="The policy that took it, for its retention.")
    vm_snapshot_id: UUID | None = Field(default=None, description="The VM snapshot it is taken for, if any.")


@message("snapshot.created")
class SnapshotCreated(Event):
    """A snapshot exists on primary storage (CreatedOnPrimary)."""

    snapshot_id: UUID
    volume_id: UUID
    kind: SnapshotKind
    parent_id: UUID | None = Field(default=None, description="The snapshot a DELTA is based on; None for FULL.")
    size_bytes: int = Field(ge=0, description="Virtual size of the volume when it was taken.")
    physical_size_bytes: int = Field(ge=0, description="Bytes the snapshot occupies on the storage.")


@message("snapshot.create.failed")
class SnapshotCreateFailed(Event):
    """A snapshot could not be taken; the volume is Ready and unchanged."""

    snapshot_id: UUID
    volume_id: UUID
    error: ErrorInfo


@message("snapshot.delete")
class DeleteSnapshot(Command):
    """Delete a snapshot. A snapshot other deltas depend on is hidden and its data merged later."""

    snapshot_id: UUID


@message("snapshot.deleted")
class SnapshotDeleted(Event):
    """A snapshot is Destroyed for users; `coalesce_pending` says its data waits for a chain merge."""

    snapshot_id: UUID
    volume_id: UUID
    coalesce_pending: bool = Field(
        default=False, description="True when a child delta still needs its data and a coalesce will merge it."
    )


@message("snapshot.delete.failed")
class SnapshotDeleteFailed(Event):
    """A snapshot could not be deleted."""

    snapshot_id: UUID
    error: ErrorInfo


@message("snapshot.revert")
class RevertSnapshot(Command):
    """Revert a volume to one of its snapshots. The volume must be Ready and its VM stopped."""

    snapshot_id: UUID


@message("snapshot.reverted")
class SnapshotReverted(Event):
    """A volume holds the data of the snapshot again and is Ready."""

    snapshot_id: UUID
    volume_id: UUID


@message("snapshot.revert.failed")
class SnapshotRevertFailed(Event):
    """A revert failed; the volume holds what it held before."""

    snapshot_id: UUID
    volume_id: UUID | None = None
    error: ErrorInfo


@message("snapshot.state.changed")
class SnapshotStateChanged(Event):
    """A snapshot moved from one state to another (CloudStack's ResourceStateEvent)."""

    snapshot_id: UUID
    old_state: SnapshotState
    new_state: SnapshotState


# ---------------------------------------------------------------------------------------------- VM snapshots


@message("vm.snapshot.create")
class CreateVmSnapshot(Command):
    """Snapshot every volume of a VM together (the VM is paused or stopped meanwhile)."""

    vm_snapshot_id: UUID = Field(description="The caller's id for the VM snapshot (the idempotency key).")
    vm_id: UUID
    name: str = Field(pattern=NAME_PATTERN, description="Operator-facing name.")
    volume_ids: tuple[UUID, ...] = Field(min_length=1, description="The VM's volumes, each snapshotted.")
    host: str | None = Field(
        default=None,
        min_length=1,
        description="The host the VM runs on: a running VM is stopped meanwhile and started again. Without it "
        "the volumes are snapshotted as they are (crash-consistent).",
    )

    @field_validator("volume_ids")
    @classmethod
    def _distinct_volumes(cls, value: tuple[UUID, ...]) -> tuple[UUID, ...]:
        if len(set(value)) != len(value):
            raise ValueError("a volume is listed twice")
        return value


@message("vm.snapshot.created")
class VmSnapshotCreated(Event):
    """Every volume of a VM has its snapshot."""

    vm_snapshot_id: UUID
    vm_id: UUID
    snapshots: tuple[VolumeSnapshotPair, ...] = Field(min_length=1)


@message("vm.snapshot.create.failed")
class VmSnapshotCreateFailed(Event):
    """A VM snapshot failed; no snapshot of it is left and the VM is in its original power state."""

    vm_snapshot_id: UUID
    vm_id: UUID
    error: ErrorInfo


@message("vm.snapshot.revert")
class RevertVmToSnapshot(Command):
    """Revert every volume of a VM to a VM snapshot, stopping and restarting the VM if it runs."""

    vm_id: UUID
    vm_snapshot_id: UUID
    host: str = Field(min_length=1, description="The host the VM lives on (its agent stops and starts it).")
    snapshots: tuple[VolumeSnapshotPair, ...] = Field(
        min_length=1, description="Each volume of the VM and its snapshot in the VM snapshot."
    )

    @field_validator("snapshots")
    @classmethod
    def _distinct_volumes(cls, value: tuple[VolumeSnapshotPair, ...]) -> tuple[VolumeSnapshotPair, ...]:
        if len({pair.volume_id for pair in value}) != len(value):
            raise ValueError("a volume is listed twice")
        return value


@message("vm.reverted")
class VmReverted(Event):
    """Every volume of a VM holds its snapshot's data and the VM is in the power state it had before."""

    vm_id: UUID
    vm_snapshot_id: UUID
    restarted: bool = Field(description="True when the VM was running and was started again.")


@message("vm.revert.failed")
class VmRevertFailed(Event):
    """A VM revert failed and was compensated: volumes as they were, the VM in its original power state."""

    vm_id: UUID
    vm_snapshot_id: UUID
    error: ErrorInfo


# ------------------------------------------------------------------------------------------------- policies


@message("snapshot_policy.create")
class CreateSnapshotPolicy(Command):
    """Snapshot a volume on a schedule, keeping the newest `max_snaps` (the oldest beyond is deleted)."""

    policy_id: UUID = Field(description="The caller's id for the policy (the idempotency key).")
    volume_id: UUID
    interval_type: IntervalType
    schedule: str = Field(
        max_length=16,
        description="HOURLY `MM`; DAILY `MM:HH`; WEEKLY `MM:HH:D` (D 1-7, 1 = Sunday); MONTHLY `MM:HH:DD` "
        "(DD 1-28). Minutes first, as CloudStack writes it.",
    )
    timezone: str = Field(
        default="UTC", min_length=1, max_length=64, description="IANA time zone the schedule is read in."
    )
    max_snaps: int = Field(ge=1, le=1000, description="How many of this policy's snapshots to keep.")


@message("snapshot_policy.created")
class SnapshotPolicyCreated(Event):
    """A snapshot policy is active; `next_run_at` is its first run (UTC)."""

    policy_id: UUID
    volume_id: UUID
    interval_type: IntervalType
    schedule: str
    timezone: str
    max_snaps: int = Field(ge=1)
    next_run_at: datetime = Field(description="The instant of the first run.")


@message("snapshot_policy.create.failed")
class SnapshotPolicyCreateFailed(Event):
    """A policy was refused (a bad schedule or time zone, an unknown volume)."""

    policy_id: UUID
    error: ErrorInfo


@message("snapshot_policy.delete")
class DeleteSnapshotPolicy(Command):
    """Stop a policy. The snapshots it took stay."""

    policy_id: UUID


@message("snapshot_policy.deleted")
class SnapshotPolicyDeleted(Event):
    """A policy will not run again."""

    policy_id: UUID


@message("snapshot_policy.delete.failed")
class SnapshotPolicyDeleteFailed(Event):
    """A policy could not be deleted."""

    policy_id: UUID
    error: ErrorInfo


# --------------------------------------------------------------------------------- agent data-plane commands


@message("agent.snapshot.create")
class CreateSnapshotOnPool(AgentCommand):
    """Take a snapshot of a volume on its pool, full or as a delta on `parent_id`."""

    pool_id: UUID
    volume_id: UUID
    snapshot_id: UUID
    kind: SnapshotKind
    parent_id: UUID | None = Field(default=None, description="For a DELTA: the snapshot it is based on.")


@message("agent.snapshot.created")
class SnapshotCreatedOnPool(Event):
    """A snapshot's data exists on the pool."""

    pool_id: UUID
    volume_id: UUID
    snapshot_id: UUID
    kind: SnapshotKind
    physical_size_bytes: int = Field(ge=0, description="Bytes the snapshot occupies on the storage.")


@message("agent.snapshot.create.failed")
class SnapshotCreateOnPoolFailed(Event):
    """A snapshot could not be taken on the pool; the volume is unchanged."""

    pool_id: UUID
    volume_id: UUID
    snapshot_id: UUID
    error: ErrorInfo


@message("agent.volume.revert")
class RevertVolumeOnPool(AgentCommand):
    """Revert a volume's data on its pool to a snapshot (in place, or by copy where the plugin cannot)."""

    pool_id: UUID
    volume_id: UUID
    snapshot_id: UUID


@message("agent.volume.reverted")
class VolumeRevertedOnPool(Event):
    """A volume's data on the pool is the snapshot's again."""

    pool_id: UUID
    volume_id: UUID
    snapshot_id: UUID


@message("agent.volume.revert.failed")
class VolumeRevertOnPoolFailed(Event):
    """A volume could not be reverted on the pool; it holds what it held before."""

    pool_id: UUID
    volume_id: UUID
    snapshot_id: UUID
    error: ErrorInfo


@message("agent.snapshot.delete")
class DeleteSnapshotOnPool(AgentCommand):
    """Delete a snapshot's data from the pool (succeeds if it is already gone)."""

    pool_id: UUID
    volume_id: UUID
    snapshot_id: UUID


@message("agent.snapshot.deleted")
class SnapshotDeletedOnPool(Event):
    """A snapshot's data is gone from the pool."""

    pool_id: UUID
    volume_id: UUID
    snapshot_id: UUID


@message("agent.snapshot.delete.failed")
class SnapshotDeleteOnPoolFailed(Event):
    """A snapshot's data could not be deleted."""

    pool_id: UUID
    volume_id: UUID
    snapshot_id: UUID
    error: ErrorInfo

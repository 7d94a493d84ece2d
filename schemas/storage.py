"""Messages of the storage domain: primary storage pools and volumes (agent commands: schemas.agent).

Pool configuration travels only in the commands that need it (`pool.add`, `agent.pool.attach`), is marked
`writeOnly` in the JSON Schema so that the journal and any tool can tell it holds secrets, is left out of `repr`,
and is never echoed in an event. Sizes are bytes; ids are UUIDs chosen by the caller (the idempotency key).
"""

from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from pydantic.config import JsonDict

from schemas.envelope import Command, Event
from schemas.errors import ErrorInfo
from schemas.registry import message

# A plugin's configuration is validated against the plugin's own model, which this package cannot know.
PluginConfig = dict[str, Any]

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"
TAG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
HYPERVISOR_PATTERN = r"^[a-z][a-z0-9]{1,31}$"
SECRET: JsonDict = {"writeOnly": True}

Tag = Annotated[str, StringConstraints(pattern=TAG_PATTERN)]
Hypervisor = Annotated[str, StringConstraints(pattern=HYPERVISOR_PATTERN)]


class PoolThresholds(BaseModel):
    """A pool's own capacity thresholds, overriding the deployment's (CloudStack sets these per pool too): no new
    volume is placed on it once its used or allocated fraction would pass them, and a byte of thin-provisioned
    capacity may hold `overprovisioning_factor` bytes of virtual size."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    capacity_disable_threshold: float = Field(
        default=0.85, gt=0, le=1, description="Used fraction past which no new volume is placed on the pool."
    )
    allocated_capacity_disable_threshold: float = Field(
        default=0.85, gt=0, le=1, description="Allocated fraction (virtual sizes) past which no new volume goes there."
    )
    overprovisioning_factor: float = Field(
        default=2.0, ge=1, le=100, description="Virtual size allowed per byte of capacity (thin-provisioned storage)."
    )


class PoolScope(StrEnum):
    """Where a pool is reachable from: one host (local disk), one cluster (shared mount), a zone or a region."""

    HOST = "host"
    CLUSTER = "cluster"
    ZONE = "zone"
    REGION = "region"


class PoolState(StrEnum):
    """A primary storage pool's state, with CloudStack's names (DESIGN §7)."""

    INITIAL = "Initial"
    UP = "Up"
    DISABLED = "Disabled"
    PREPARE_FOR_MAINTENANCE = "PrepareForMaintenance"
    MAINTENANCE = "Maintenance"
    ERROR_IN_MAINTENANCE = "ErrorInMaintenance"
    CANCEL_MAINTENANCE = "CancelMaintenance"
    REMOVED = "Removed"


class VolumeState(StrEnum):
    """A volume's state, with CloudStack's names (DESIGN §7)."""

    ALLOCATED = "Allocated"
    CREATING = "Creating"
    READY = "Ready"
    MIGRATING = "Migrating"
    SNAPSHOTTING = "Snapshotting"
    REVERT_SNAPSHOTTING = "RevertSnapshotting"
    RESIZING = "Resizing"
    DESTROY = "Destroy"
    EXPUNGING = "Expunging"
    EXPUNGED = "Expunged"


class VolumeOperation(StrEnum):
    """A long operation that a saga runs on a Ready volume, holding it in the matching state meanwhile."""

    MIGRATE = "migrate"
    SNAPSHOT = "snapshot"
    REVERT_SNAPSHOT = "revert_snapshot"


# ---------------------------------------------------------------------------------------------------- pools


@message("pool.add")
class AddPool(Command):
    """Add a primary storage pool served by a plugin; the pool starts Initial and goes Up once attached."""

    pool_id: UUID = Field(description="The caller's id for the pool (the idempotency key).")
    name: str = Field(pattern=NAME_PATTERN, description="Operator-facing name, unique per zone.")
    plugin: str = Field(min_length=1, description="Name of the plugin that serves the pool, e.g. `qcow2fs`.")
    config: PluginConfig = Field(
        repr=False,
        json_schema_extra=SECRET,
        description="The plugin's configuration, validated against its model. May hold secrets: never echoed.",
    )
    scope: PoolScope = Field(description="From where the pool is reachable.")
    zone_id: UUID = Field(description="The zone the pool belongs to.")
    cluster_id: str | None = Field(
        default=None, validate_default=True, description="The cluster that reaches the pool (cluster and host scope)."
    )
    host: str | None = Field(
        default=None, validate_default=True, description="The host whose local storage it is (host scope only)."
    )
    hypervisors: frozenset[Hypervisor] = Field(
        default=frozenset(), description="Hypervisors whose VMs may use it (`kvm`, `vmware`); empty means any."
    )
    tags: frozenset[Tag] = Field(default=frozenset(), description="Storage tags a disk offering may ask for.")
    thresholds: PoolThresholds | None = Field(
        default=None, description="The pool's own capacity thresholds; None: the deployment's (STRATA_STORAGE_*)."
    )

    @field_validator("cluster_id")
    @classmethod
    def _cluster_for_scope(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("scope") in (PoolScope.CLUSTER, PoolScope.HOST) and not value:
            raise ValueError("a cluster- or host-scoped pool needs cluster_id")
        return value

    @field_validator("host")
    @classmethod
    def _host_for_scope(cls, value: str | None, info: ValidationInfo) -> str | None:
        scope = info.data.get("scope")
        if scope is PoolScope.HOST and not value:
            raise ValueError("a host-scoped pool needs host")
        if scope is not None and scope is not PoolScope.HOST and value:
            raise ValueError(f"only a host-scoped pool names a host (this one is {scope})")
        return value


@message("pool.added")
class PoolAdded(Event):
    """A pool was attached by its plugin and is Up. Its configuration is deliberately absent."""

    pool_id: UUID
    name: str
    plugin: str
    scope: PoolScope
    zone_id: UUID
    cluster_id: str | None = None
    host: str | None = None
    hypervisors: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    capacity_bytes: int = Field(ge=0, description="Total capacity the plugin reported.")
    used_bytes: int = Field(ge=0, description="Bytes in use on the storage as the plugin reported.")


@message("pool.add.failed")
class PoolAddFailed(Event):
    """A pool could not be added; nothing of it remains."""

    pool_id: UUID
    error: ErrorInfo


class PoolCommand(Command):
    """A command on one existing pool."""

    pool_id: UUID = Field(description="The pool.")


@message("pool.enable")
class EnablePool(PoolCommand):
    """Let the allocator use a Disabled pool again."""


@message("pool.disable")
class DisablePool(PoolCommand):
    """Stop new allocations on a pool; existing volumes keep working."""


@message("pool.maintain")
class MaintainPool(PoolCommand):
    """Enter maintenance: no new allocations, wait for in-flight operations, then release the storage."""


@message("pool.cancel_maintenance")
class CancelPoolMaintenance(PoolCommand):
    """Leave maintenance and bring the pool back Up."""


@message("pool.delete")
class DeletePool(PoolCommand):
    """Remove a pool. Refused while volumes exist on it."""


@message("pool.state.changed")
class PoolStateChanged(Event):
    """A pool moved from one state to another (CloudStack's ResourceStateEvent)."""

    pool_id: UUID
    old_state: PoolState
    new_state: PoolState
    reason: str | None = Field(default=None, description="Why, when the change was not requested by a user.")


@message("pool.operation.failed")
class PoolOperationFailed(Event):
    """Enable, disable, maintain, cancel-maintenance or delete of a pool failed; its state is unchanged."""

    pool_id: UUID
    operation: str = Field(description="Wire type of the command that failed, e.g. `pool.maintain`.")
    error: ErrorInfo


@message("pool.stats.collected")
class PoolStatsCollected(Event):
    """Periodic statistics of a pool, as reported by its plugin and counted by the storage service."""

    pool_id: UUID
    capacity_bytes: int = Field(ge=0, description="Total capacity of the storage.")
    used_bytes: int = Field(ge=0, description="Bytes actually written on the storage.")
    allocated_bytes: int = Field(ge=0, description="Sum of the virtual sizes of the volumes placed on the pool.")
    read_iops: float | None = Field(default=None, ge=0, description="Where the plugin measures IOPS.")
    write_iops: float | None = Field(default=None, ge=0, description="Where the plugin measures IOPS.")


# -------------------------------------------------------------------------------------------------- volumes


@message("volume.create")
class CreateVolume(Command):
    """Create a volume: the allocator picks a pool unless one is named, then an agent creates it there."""

    volume_id: UUID = Field(description="The caller's id for the volume (the idempotency key).")
    name: str = Field(pattern=NAME_PATTERN, description="Operator-facing name.")
    size_bytes: int = Field(gt=0, description="Virtual size in bytes.")
    zone_id: UUID = Field(description="The zone to place it in.")
    cluster_id: str | None = Field(default=None, description="The cluster of the VM that will use it, if known.")
    host: str | None = Field(default=None, description="The host of the VM that will use it, if known.")
    hypervisor: Hypervisor | None = Field(default=None, description="The VM's hypervisor.")
    tags: frozenset[Tag] = Field(default=frozenset(), description="Storage tags every candidate pool must carry.")
    pool_id: UUID | None = Field(default=None, description="Place it on this pool instead of asking the allocator.")
    vm_id: UUID | None = Field(default=None, description="The VM it belongs to, if any.")
    template_id: UUID | None = Field(default=None, description="Create it from this template instead of empty.")


@message("volume.created")
class VolumeCreated(Event):
    """A volume exists on its pool and is Ready."""

    volume_id: UUID
    pool_id: UUID
    size_bytes: int = Field(gt=0, description="Virtual size in bytes.")
    vm_id: UUID | None = None
    entity_version: int = Field(
        default=0,
        ge=0,
        description="The volume's version after the change this event reports: a counter the storage service "
        "increments with every change of the volume, so that a read model applies only what is newer than what it "
        "holds. 0 from a producer older than versions.",
    )


@message("volume.create.failed")
class VolumeCreateFailed(Event):
    """A volume could not be created; nothing of it remains on any pool."""

    volume_id: UUID
    error: ErrorInfo
    skipped_pools: dict[str, str] = Field(
        default_factory=dict, description="When no pool fitted: each pool's id and why the allocator skipped it."
    )


@message("volume.delete")
class DeleteVolume(Command):
    """Destroy and expunge a volume. Refused while it is in the middle of another operation."""

    volume_id: UUID


@message("volume.deleted")
class VolumeDeleted(Event):
    """A volume is Expunged: its data is gone from the pool."""

    volume_id: UUID
    pool_id: UUID | None = Field(description="The pool it was on; None if it was never created on one.")
    entity_version: int = Field(
        default=0,
        ge=0,
        description="The volume's version after the change this event reports: a counter the storage service "
        "increments with every change of the volume, so that a read model applies only what is newer than what it "
        "holds. 0 from a producer older than versions.",
    )


@message("volume.delete.failed")
class VolumeDeleteFailed(Event):
    """A volume could not be deleted; it stays in the state it was in (or Destroy, to be retried)."""

    volume_id: UUID
    error: ErrorInfo


@message("volume.resize")
class ResizeVolume(Command):
    """Change a Ready volume's virtual size."""

    volume_id: UUID
    new_size_bytes: int = Field(gt=0, description="The new virtual size in bytes.")
    allow_shrink: bool = Field(default=False, description="Shrinking loses the data past the new end: opt in.")


@message("volume.resized")
class VolumeResized(Event):
    """A volume has its new size and is Ready again."""

    volume_id: UUID
    old_size_bytes: int = Field(gt=0)
    new_size_bytes: int = Field(gt=0)
    entity_version: int = Field(
        default=0,
        ge=0,
        description="The volume's version after the change this event reports: a counter the storage service "
        "increments with every change of the volume, so that a read model applies only what is newer than what it "
        "holds. 0 from a producer older than versions.",
    )


@message("volume.resize.failed")
class VolumeResizeFailed(Event):
    """A resize failed; the volume is Ready with its old size."""

    volume_id: UUID
    error: ErrorInfo


@message("volume.operation.begin")
class BeginVolumeOperation(Command):
    """Hold a Ready volume in Migrating, Snapshotting or RevertSnapshotting while a saga works on it."""

    volume_id: UUID
    operation: VolumeOperation


@message("volume.operation.end")
class EndVolumeOperation(Command):
    """Bring a volume held by `volume.operation.begin` back to Ready."""

    volume_id: UUID
    operation: VolumeOperation
    succeeded: bool = Field(description="Whether the operation did what it meant to (recorded, not decisive).")


@message("volume.state.changed")
class VolumeStateChanged(Event):
    """A volume moved from one state to another (CloudStack's ResourceStateEvent)."""

    volume_id: UUID
    old_state: VolumeState
    new_state: VolumeState
    entity_version: int = Field(
        default=0,
        ge=0,
        description="The volume's version after the change this event reports: a counter the storage service "
        "increments with every change of the volume, so that a read model applies only what is newer than what it "
        "holds. 0 from a producer older than versions.",
    )


@message("volume.operation.failed")
class VolumeOperationFailed(Event):
    """A volume could not be held or released for an operation; its state is unchanged."""

    volume_id: UUID
    operation: VolumeOperation
    error: ErrorInfo

"""Messages of the storage domain: primary storage pools, volumes, and the data-plane commands agents run.

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
    model_validator,
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


@message("volume.operation.failed")
class VolumeOperationFailed(Event):
    """A volume could not be held or released for an operation; its state is unchanged."""

    volume_id: UUID
    operation: VolumeOperation
    error: ErrorInfo


# --------------------------------------------------------------------------------- agent data-plane commands


class AgentCommand(Command):
    """A data-plane command for the agent of one host, or any agent of one cluster."""

    host: str | None = Field(default=None, description="Route to this host's agent.")
    cluster_id: str | None = Field(default=None, description="Route to any agent of this cluster.")

    @model_validator(mode="after")
    def _routed(self) -> "AgentCommand":
        if not self.host and not self.cluster_id:
            raise ValueError("an agent command needs a host or a cluster_id to be routed to")
        return self

    def routing_key(self) -> str:
        """`agent.host.<host>.<type>` (a host named wins) or `agent.cluster.<cluster>.<type>`.

        Dots in the names become '-', so that a name is always one word of the topic key.
        """
        if self.host:
            return f"agent.host.{routing_word(self.host)}.{self.message_type}"
        return f"agent.cluster.{routing_word(self.cluster_id or '')}.{self.message_type}"


def routing_word(name: str) -> str:
    """A host or cluster name as one word of a topic routing key ('.' would split it)."""
    return name.replace(".", "-")


@message("agent.pool.attach")
class AttachPoolToHost(AgentCommand):
    """Give an agent a pool's plugin and configuration so that it can run operations on that pool."""

    pool_id: UUID
    plugin: str = Field(min_length=1, description="Name of the plugin that serves the pool.")
    config: PluginConfig = Field(
        repr=False, json_schema_extra=SECRET, description="The plugin's configuration. May hold secrets."
    )


@message("agent.pool.attached")
class PoolAttachedToHost(Event):
    """An agent reaches a pool; capacity and usage as its plugin reports them."""

    pool_id: UUID
    host: str
    capacity_bytes: int = Field(ge=0)
    used_bytes: int = Field(ge=0)


@message("agent.pool.attach.failed")
class PoolAttachToHostFailed(Event):
    """An agent could not reach a pool (bad configuration, storage down)."""

    pool_id: UUID
    host: str
    error: ErrorInfo


@message("agent.pool.detach")
class DetachPoolFromHost(AgentCommand):
    """Release a deleted pool's storage: the plugin forgets the pool (its path or LUN may be reused)."""

    pool_id: UUID


@message("agent.pool.detached")
class PoolDetachedFromHost(Event):
    """An agent released a pool's storage (or found it released already)."""

    pool_id: UUID
    host: str


@message("agent.pool.detach.failed")
class PoolDetachFromHostFailed(Event):
    """An agent could not release a pool's storage (it still holds data, storage unreachable)."""

    pool_id: UUID
    host: str
    error: ErrorInfo


@message("agent.volume.create")
class CreateVolumeOnPool(AgentCommand):
    """Create a volume's data on a pool."""

    pool_id: UUID
    volume_id: UUID
    size_bytes: int = Field(gt=0, description="Virtual size in bytes.")
    template_id: UUID | None = Field(default=None, description="Template to base it on, if any.")


@message("agent.volume.created")
class VolumeCreatedOnPool(Event):
    """A volume's data exists on the pool."""

    pool_id: UUID
    volume_id: UUID
    size_bytes: int = Field(gt=0)
    locator: str = Field(description="The plugin's address of the volume (a path, a LUN, an object key).")


@message("agent.volume.create.failed")
class VolumeCreateOnPoolFailed(Event):
    """A volume's data could not be created; the plugin left nothing behind."""

    pool_id: UUID
    volume_id: UUID
    error: ErrorInfo


@message("agent.volume.delete")
class DeleteVolumeOnPool(AgentCommand):
    """Delete a volume's data from a pool (succeeds if it is already gone)."""

    pool_id: UUID
    volume_id: UUID


@message("agent.volume.deleted")
class VolumeDeletedOnPool(Event):
    """A volume's data is gone from the pool."""

    pool_id: UUID
    volume_id: UUID


@message("agent.volume.delete.failed")
class VolumeDeleteOnPoolFailed(Event):
    """A volume's data could not be deleted."""

    pool_id: UUID
    volume_id: UUID
    error: ErrorInfo


@message("agent.volume.resize")
class ResizeVolumeOnPool(AgentCommand):
    """Change a volume's virtual size on its pool."""

    pool_id: UUID
    volume_id: UUID
    new_size_bytes: int = Field(gt=0)
    allow_shrink: bool = False


@message("agent.volume.resized")
class VolumeResizedOnPool(Event):
    """A volume has its new size on the pool."""

    pool_id: UUID
    volume_id: UUID
    new_size_bytes: int = Field(gt=0)


@message("agent.volume.resize.failed")
class VolumeResizeOnPoolFailed(Event):
    """A volume could not be resized on the pool; it keeps its old size."""

    pool_id: UUID
    volume_id: UUID
    error: ErrorInfo


@message("agent.pool.stats")
class CollectPoolStats(AgentCommand):
    """Ask an agent that reaches a pool for the pool's capacity and use, as its plugin reports them."""

    pool_id: UUID


@message("agent.pool.stats.reported")
class PoolStatsReported(Event):
    """A pool's statistics as an agent's plugin reported them."""

    pool_id: UUID
    host: str
    capacity_bytes: int = Field(ge=0)
    used_bytes: int = Field(ge=0)
    read_iops: float | None = Field(default=None, ge=0)
    write_iops: float | None = Field(default=None, ge=0)


@message("agent.pool.stats.failed")
class PoolStatsFailed(Event):
    """An agent could not read a pool's statistics (storage unreachable, pool not attached)."""

    pool_id: UUID
    host: str
    error: ErrorInfo


# -------------------------------------------------------------------------------------------------- queries


class PoolInfo(BaseModel):
    """A pool as `strata pool list|show` shows it (never its configuration)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pool_id: UUID
    name: str
    plugin: str
    state: PoolState
    scope: PoolScope
    zone_id: UUID
    cluster_id: str | None = None
    host: str | None = None
    hypervisors: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    capacity_bytes: int = Field(ge=0, description="Total capacity the plugin last reported.")
    used_bytes: int = Field(ge=0, description="Bytes in use the plugin last reported.")
    allocated_bytes: int = Field(ge=0, description="Sum of the virtual sizes of the volumes on the pool.")
    volumes: int = Field(ge=0, description="Volumes on the pool that are not expunged.")


class VolumeInfo(BaseModel):
    """A volume as `strata volume list|show` shows it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    volume_id: UUID
    name: str
    state: VolumeState
    size_bytes: int = Field(gt=0)
    zone_id: UUID
    pool_id: UUID | None = Field(default=None, description="The pool it is on; None before it is placed.")
    vm_id: UUID | None = None
    locator: str | None = Field(default=None, description="The plugin's address of the volume (e.g. its path).")


@message("pool.list")
class ListPools(Command):
    """A query: the pools, all or one (`pool_id`), Removed ones only when asked."""

    pool_id: UUID | None = Field(default=None, description="Only this pool (`strata pool show`).")
    include_removed: bool = False


@message("pool.listed")
class PoolsListed(Event):
    """The answer to `pool.list`."""

    pools: tuple[PoolInfo, ...] = ()


@message("volume.list")
class ListVolumes(Command):
    """A query: the volumes, optionally of one pool or VM, or one volume; Expunged ones only when asked."""

    volume_id: UUID | None = Field(default=None, description="Only this volume (`strata volume show`).")
    pool_id: UUID | None = None
    vm_id: UUID | None = None
    include_expunged: bool = False


@message("volume.listed")
class VolumesListed(Event):
    """The answer to `volume.list`."""

    volumes: tuple[VolumeInfo, ...] = ()

"""Data-plane commands for the agent of one host or any agent of one cluster, and the events they produce.

They are routed by host or cluster (`AgentCommand.routing_key`), not by type alone. A pool's configuration
travels only in `agent.pool.attach`, marked `writeOnly` so the journal masks it.
"""

from enum import StrEnum
from typing import Annotated, TypedDict
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.envelope import Command, Event
from schemas.errors import ErrorInfo
from schemas.registry import message
from schemas.storage import SECRET, PluginConfig


class AgentRoute(TypedDict, total=False):
    """The keywords that route an agent command: `host` or `cluster_id` (None: not this way)."""

    host: str | None
    cluster_id: str | None


class AgentCommand(Command):
    """A data-plane command for the agent of one host, or any agent of one cluster."""

    host: str | None = Field(default=None, description="Route to this host's agent.")
    cluster_id: str | None = Field(default=None, description="Route to any agent of this cluster.")
    deadline_seconds: float | None = Field(
        default=None,
        gt=0,
        le=86400.0,
        description="Seconds the agent may work on it before stopping the work and answering DEADLINE_EXCEEDED; "
        "None for the agent's default (STRATA_AGENT_OPERATION_DEADLINE_SECONDS). A long operation asks for more.",
    )

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

    def undeliverable(self, error: ErrorInfo) -> Event | None:
        """No agent takes the command (a mistyped host or cluster): the pool add fails as if the agent refused."""
        where = self.host or f"cluster {self.cluster_id}"
        return PoolAttachToHostFailed(pool_id=self.pool_id, host=where, error=error)


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
    base: "BaseCopy | None" = Field(
        default=None,
        description="The pool's base copy of the template (made from the image store first if the pool lacks it).",
    )
    deadline_seconds: float | None = Field(
        default=None, gt=0, le=86400.0, description="Seconds it may take (making a base copy first takes long)."
    )


@message("agent.volume.created")
class VolumeCreatedOnPool(Event):
    """A volume's data exists on the pool."""

    pool_id: UUID
    volume_id: UUID
    size_bytes: int = Field(gt=0)
    locator: str = Field(description="The plugin's address of the volume (a path, a LUN, an object key).")
    base_volume_id: UUID | None = Field(default=None, description="The base copy it was made on, if any.")
    linked: bool = Field(default=False, description="An overlay on the base copy (True) or a full copy of it.")


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


# ------------------------------------------------------------------------------------------- copies (data plane)
# Data never rides the bus: these commands move a volume's bytes between a pool and a zone-wide store (an image or
# backup store) through the agent that reaches both. Across hosts, the source host's agent copies to the store and
# the destination host's agent copies from it.


class CopyFormat(StrEnum):
    """The format of a copy's bytes in the store."""

    RAW = "raw"
    QCOW2 = "qcow2"


class StoreAccess(BaseModel):
    """How an agent opens a zone-wide store: its id, plugin and configuration (masked in the journal)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    store_id: UUID
    plugin: str = Field(min_length=1, description="Name of the plugin that serves the store (e.g. fsbackup, s3).")
    config: PluginConfig = Field(
        repr=False, json_schema_extra=SECRET, description="The plugin's configuration. May hold secrets."
    )


ObjectId = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
        description="The copy's name in the store (an image id, a staging name).",
    ),
]
Deadline = Annotated[
    float, Field(gt=0, le=86400.0, description="Seconds the whole copy may take before it is given up.")
]


CHUNK_LIST_CHECKSUM = "chunklist-sha256:"
"""The prefix of a transit copy's name: the SHA-256 of its store's list of its verified pieces."""
STORED_CHECKSUM = rf"^(sha256:|{CHUNK_LIST_CHECKSUM})[0-9a-f]{{64}}$"
"""What names a stored object's bytes: their SHA-256, or (a transit copy) the SHA-256 of its list of pieces."""


@message("agent.volume.copy_to_store")
class CopyVolumeToStore(AgentCommand):
    """Copy a volume's current content (or one of its snapshots') from its pool into a store as `object_id`."""

    pool_id: UUID
    volume_id: UUID
    snapshot_id: UUID | None = Field(default=None, description="Copy this snapshot's content instead.")
    store: StoreAccess = Field(description="The store written to.")
    object_id: ObjectId
    format: CopyFormat = Field(default=CopyFormat.QCOW2, description="Format of the bytes written to the store.")
    transit: bool = Field(
        default=False,
        description="A copy only strata reads back (a staged migration's): a store that can names it by its "
        "verified pieces (`chunklist-sha256:`) instead of hashing every byte a second time for its SHA-256.",
    )
    deadline_seconds: Deadline = 3600.0


@message("agent.volume.copied_to_store")
class VolumeCopiedToStore(Event):
    """A volume's content is in the store, complete (its manifest is written last)."""

    pool_id: UUID
    volume_id: UUID
    store_id: UUID
    object_id: str
    host: str
    size_bytes: int = Field(ge=0, description="Bytes of the stored object.")
    checksum: str = Field(
        pattern=STORED_CHECKSUM,
        description="`sha256:<hex>` of the stored object's bytes; for a transit copy, possibly "
        "`chunklist-sha256:<hex>`, the digest of the store's list of its verified pieces.",
    )


@message("agent.volume.copy_to_store.failed")
class VolumeCopyToStoreFailed(Event):
    """The copy failed or passed its deadline; the store holds no object (nothing half written)."""

    pool_id: UUID
    volume_id: UUID
    store_id: UUID
    object_id: str
    error: ErrorInfo


@message("agent.volume.copy_from_store")
class CopyVolumeFromStore(AgentCommand):
    """Create a volume on a pool from an object of a store (the same command again finds it made)."""

    pool_id: UUID
    volume_id: UUID
    store: StoreAccess = Field(description="The store read from.")
    object_id: ObjectId
    format: CopyFormat | None = Field(default=None, description="Format of the object's bytes; None: detect it.")
    checksum: str | None = Field(
        default=None,
        pattern=STORED_CHECKSUM,
        description="`sha256:<hex>` (or a transit copy's `chunklist-sha256:<hex>`) the object must have; the copy "
        "is refused if it has another.",
    )
    deadline_seconds: Deadline = 3600.0


@message("agent.volume.copied_from_store")
class VolumeCopiedFromStore(Event):
    """A volume made from a store's object is on the pool."""

    pool_id: UUID
    volume_id: UUID
    store_id: UUID
    object_id: str
    host: str
    size_bytes: int = Field(gt=0, description="The volume's virtual size.")
    locator: str = Field(description="The plugin's address of the volume.")


@message("agent.volume.copy_from_store.failed")
class VolumeCopyFromStoreFailed(Event):
    """The copy failed or passed its deadline; no volume was made (a retry of the same command may finish it)."""

    pool_id: UUID
    volume_id: UUID
    store_id: UUID
    object_id: str
    error: ErrorInfo


class CopyStage(StrEnum):
    """Which half of a copy a progress report is about."""

    POOL = "pool"
    """Reading the volume from, or writing it to, the pool."""
    STORE = "store"
    """Writing the object to, or reading it from, the store."""


@message("agent.copy.progressed")
class CopyProgressed(Event):
    """How far a copy between a pool and a store has come (sent every second or so while it runs)."""

    pool_id: UUID
    volume_id: UUID
    object_id: str
    host: str
    stage: CopyStage
    done_bytes: int = Field(ge=0)
    total_bytes: int = Field(ge=0)


class BaseCopy(BaseModel):
    """A template's base copy on a pool: a volume of its own, made from the image store's object when missing, that
    volumes from the template are overlays on (plugins with `linked_clone`) or full copies of."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    volume_id: UUID = Field(description="The base copy's id on the pool (one per template and pool).")
    store: StoreAccess = Field(description="The image store that holds the template.")
    object_id: ObjectId
    format: CopyFormat = Field(description="Format of the template's bytes.")
    checksum: str = Field(pattern=r"^sha256:[0-9a-f]{64}$", description="`sha256:<hex>` the template must have.")


CreateVolumeOnPool.model_rebuild()

"""Messages of volume migration between pools (DESIGN §5): the saga's input and outcome, the storage service's plan
and switch, the staging store the image service lends, and the agent's clean-up of a staged copy."""

from enum import StrEnum
from uuid import UUID

from pydantic import Field

from schemas.agent import STORED_CHECKSUM, AgentCommand, ObjectId, StoreAccess
from schemas.envelope import Command, Event
from schemas.errors import ErrorInfo
from schemas.registry import message


class MigrationMethod(StrEnum):
    """How a volume moves: by the storage itself, copied by one agent that reaches both pools, or copied through a
    zone-wide store (one agent writes it there, another reads it back)."""

    NATIVE = "native"
    DIRECT = "direct"
    STAGED = "staged"


@message("volume.migrate")
class MigrateVolume(Command):
    """Move a Ready volume to another pool; it keeps its id (the migrate-volume saga)."""

    volume_id: UUID
    pool_id: UUID = Field(description="The destination pool.")
    staged: bool = Field(
        default=False,
        description="Copy through the zone's store even where one agent reaches both pools (the fallback path).",
    )


@message("volume.migrated")
class VolumeMigrated(Event):
    """The volume lives on the destination pool, Ready; the source copy and the staged copy are deleted."""

    volume_id: UUID
    source_pool_id: UUID
    pool_id: UUID
    method: MigrationMethod
    size_bytes: int = Field(ge=0, description="The volume's virtual size.")


@message("volume.migrate.failed")
class VolumeMigrateFailed(Event):
    """The migration was refused or undone (the volume Ready on its source pool), or is STUCK (see the saga)."""

    volume_id: UUID
    pool_id: UUID
    error: ErrorInfo


@message("volume.migration.plan")
class PlanMigration(Command):
    """A query to the storage service: may the volume move to the pool, and how? Refused with the reason."""

    volume_id: UUID
    pool_id: UUID = Field(description="The destination pool.")
    staged: bool = Field(default=False, description="Plan the copy through the zone's store whatever else could.")


@message("volume.migration.planned")
class MigrationPlanned(Event):
    """The storage service's answer: both pools, how to reach their agents, and the method."""

    volume_id: UUID
    size_bytes: int = Field(gt=0)
    zone_id: UUID
    source_pool_id: UUID
    source_host: str | None = None
    source_cluster_id: str | None = None
    pool_id: UUID
    host: str | None = None
    cluster_id: str | None = None
    method: MigrationMethod
    why: str = Field(description="Why this method (which plugin lacks native migration, say).")
    direct_host: str | None = Field(default=None, description="For a direct copy: the agent that reaches both...")
    direct_cluster_id: str | None = Field(default=None, description="...or any agent of this cluster.")


@message("volume.pool.switch")
class SwitchVolumePool(Command):
    """Make the destination copy the volume (the pivot of a migration): its pool and locator change, its id not."""

    volume_id: UUID
    pool_id: UUID
    locator: str = Field(description="The plugin's address of the destination copy.")


@message("volume.pool.switched")
class VolumePoolSwitched(Event):
    """A migrating volume now lives on another pool."""

    volume_id: UUID
    source_pool_id: UUID | None = Field(default=None, description="None when it was switched already (a repeat).")
    pool_id: UUID
    locator: str


@message("staging.store.find")
class FindStagingStore(Command):
    """A query to the image service: a zone-wide store that can hold a staged copy of `size_bytes`."""

    zone_id: UUID
    size_bytes: int = Field(gt=0)


@message("staging.store.found")
class StagingStoreFound(Event):
    """The store to stage through (by reference: its configuration stays with the image service)."""

    zone_id: UUID
    store_id: UUID
    name: str
    plugin: str
    free_bytes: int | None = Field(default=None, ge=0, description="Room left in it, where the store can tell.")


class _Staging(Command):
    """A copy through a staging store that the image service hands to an agent with the store's configuration."""

    store_id: UUID
    object_id: ObjectId
    host: str | None = Field(default=None, description="The agent that does it: this host's...")
    cluster_id: str | None = Field(default=None, description="...or any agent of this cluster.")


@message("staging.copy_out")
class StageVolumeOut(_Staging):
    """Copy a volume from its pool into the staging store (answered with `agent.volume.copied_to_store`)."""

    pool_id: UUID
    volume_id: UUID
    deadline_seconds: float = Field(default=3600.0, gt=0, le=86400.0)


@message("staging.copy_in")
class StageVolumeIn(_Staging):
    """Make a volume on a pool from its staged copy (answered with `agent.volume.copied_from_store`)."""

    pool_id: UUID
    volume_id: UUID
    checksum: str | None = Field(default=None, pattern=STORED_CHECKSUM)
    deadline_seconds: float = Field(default=3600.0, gt=0, le=86400.0)


@message("staging.drop")
class DropStagedCopy(_Staging):
    """Delete a staged copy from the store (answered with `agent.staged_copy.deleted`; gone already is fine)."""


@message("agent.staged_copy.delete")
class DeleteStagedCopy(AgentCommand):
    """Delete a staged copy from a store (a copy already gone counts as deleted)."""

    store: StoreAccess
    object_id: ObjectId


@message("agent.staged_copy.deleted")
class StagedCopyDeleted(Event):
    """The staged copy is gone from the store."""

    store_id: UUID
    object_id: str


@message("agent.staged_copy.delete.failed")
class StagedCopyDeleteFailed(Event):
    """The staged copy could not be deleted."""

    store_id: UUID
    object_id: str
    error: ErrorInfo


@message("agent.volume.copy_between_pools")
class CopyVolumeBetweenPools(AgentCommand):
    """Copy a volume from one pool into another that the same agent reaches (a direct migration): the destination
    plugin reads the source volume's file where it can, through a staging file on the host otherwise."""

    source_pool_id: UUID
    pool_id: UUID = Field(description="The destination pool.")
    volume_id: UUID


@message("agent.volume.copied_between_pools")
class VolumeCopiedBetweenPools(Event):
    """The destination pool holds a copy of the volume (its source copy untouched)."""

    source_pool_id: UUID
    pool_id: UUID
    volume_id: UUID
    host: str
    size_bytes: int = Field(ge=0)
    locator: str = Field(description="The destination plugin's address of the copy.")


@message("agent.volume.copy_between_pools.failed")
class VolumeCopyBetweenPoolsFailed(Event):
    """The copy failed; nothing of it is kept on the destination."""

    source_pool_id: UUID
    pool_id: UUID
    volume_id: UUID
    error: ErrorInfo

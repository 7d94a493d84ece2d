"""Queries of the storage service, answered over request/reply: pools and volumes as an operator sees them.

A pool's configuration is part of an answer only with its secrets masked (as the plugin's model dumps them).
"""

from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from schemas.envelope import Command, Event
from schemas.registry import message
from schemas.storage import PoolScope, PoolState, PoolThresholds, VolumeState


class PoolInfo(BaseModel):
    """A pool as `strata pool list|show` shows it (its configuration with the secrets masked)."""

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
    config: dict[str, Any] = Field(
        default_factory=dict, description="The plugin configuration it was added with, its secrets masked."
    )
    thresholds: PoolThresholds | None = Field(default=None, description="Its own thresholds; None: the deployment's.")


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
    entity_version: int = Field(
        default=0, ge=0, description="The volume's version (see `volume.created`): what a read model catching up keeps."
    )


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

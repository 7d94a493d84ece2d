"""What plugins return: volumes, snapshots, chains, pool statistics and backup references (frozen models)."""

from datetime import datetime
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PoolState(StrEnum):
    """The administrative state of a pool as the plugin keeps it."""

    ENABLED = "enabled"
    DISABLED = "disabled"
    """Existing volumes work; no new volume is placed on it."""
    MAINTENANCE = "maintenance"
    """Nothing may change on it: volume operations are refused with FailedPrecondition."""


class Pool(_Frozen):
    """One storage pool as the plugin sees it."""

    pool_id: str
    state: PoolState


class VolumeFormat(StrEnum):
    """On-disk formats a volume can be copied in from or out to."""

    RAW = "raw"
    QCOW2 = "qcow2"


class TemplateMode(StrEnum):
    """How a volume is made from a template."""

    BACKING = "backing"
    """The template becomes the read-only base of the volume's chain (fast, shares blocks)."""
    COPY = "copy"
    """The template's bytes are copied into a standalone volume."""


class Volume(_Frozen):
    """A volume on primary storage."""

    volume_id: str
    size_bytes: int = Field(ge=0, description="Virtual size the guest sees.")
    allocated_bytes: int = Field(ge=0, description="Bytes the volume's own files take on the storage.")
    format: VolumeFormat
    path: str = Field(description="Where a hypervisor on a host of the pool's scope opens the volume.")


class SnapshotKind(StrEnum):
    """How a snapshot keeps its data."""

    FULL = "full"
    """A standalone copy of the volume at that point."""
    DELTA = "delta"
    """Only the blocks changed since the layer below it (a node of the volume's backing chain)."""


class Snapshot(_Frozen):
    """A point-in-time image of a volume."""

    snapshot_id: str
    volume_id: str
    kind: SnapshotKind
    size_bytes: int = Field(ge=0, description="The volume's virtual size when the snapshot was taken.")
    created_at: datetime
    physical_size_bytes: int | None = Field(
        default=None, ge=0, description="Bytes the snapshot holds on the storage; None if the plugin cannot tell."
    )


class ChainLink(_Frozen):
    """One layer of a volume's chain, top (the active layer) first."""

    path: str
    snapshot_id: str | None = Field(default=None, description="The live snapshot this layer holds, if any.")
    active: bool = Field(default=False, description="True for the layer the volume writes to.")
    allocated_bytes: int = Field(ge=0)
    children: int = Field(ge=0, description="Layers (of any branch) that use this one as their backing file.")


class Chain(_Frozen):
    """A volume's backing chain from its active layer down to its base."""

    volume_id: str
    links: tuple[ChainLink, ...]


class PoolStats(_Frozen):
    """Capacity and use of a pool; IOPS only where the storage can tell."""

    capacity_bytes: int = Field(ge=0)
    used_bytes: int = Field(ge=0, description="Bytes taken on the storage (by anything).")
    allocated_bytes: int = Field(ge=0, description="Sum of the virtual sizes of the pool's volumes.")
    volumes: int = Field(ge=0)
    read_iops: float | None = None
    write_iops: float | None = None


class BackupRef(_Frozen):
    """A finished backup as a backup target lists it."""

    backup_id: str
    volume_id: str
    size_bytes: int = Field(ge=0, description="Size of the backed-up volume.")
    parent_id: str | None = Field(default=None, description="The backup this one is incremental against.")
    created_at: datetime
    written_bytes: int = Field(ge=0, description="Bytes this backup added to the store.")


class BackupReport(_Frozen):
    """A backup just taken, and what it cost."""

    ref: BackupRef
    bytes_read: int = Field(ge=0, description="Bytes read from the source.")
    bytes_written: int = Field(ge=0, description="Bytes written to the store (new chunks and the manifest).")
    bytes_reused: int = Field(ge=0, description="Bytes of data the store already held (not written again).")
    changed_blocks: bool = Field(description="True when only the changed blocks were read.")
    note: str | None = Field(default=None, description="How it read, when not by changed blocks (for the record).")


class VerifyReport(_Frozen):
    """A backup's chunks read back and checked against their hashes."""

    backup_id: str
    chunks: int = Field(ge=0, description="Distinct chunks checked.")
    bytes_checked: int = Field(ge=0)
    bad: tuple[str, ...] = Field(default=(), description="Each missing or corrupted chunk, described.")


class GarbageReport(_Frozen):
    """What a garbage collection of a backup target freed."""

    freed_chunks: int = Field(ge=0)
    freed_bytes: int = Field(ge=0)
    deferred: bool = Field(default=False, description="True when a backup was in flight: nothing was freed.")


class ImageKind(StrEnum):
    """What an image store keeps."""

    TEMPLATE = "template"
    ISO = "iso"


class ImageRef(_Frozen):
    """A template or ISO in an image store."""

    image_id: str
    kind: ImageKind
    size_bytes: int = Field(ge=0)
    checksum: str | None = Field(default=None, description="SHA-256 of the image's bytes, hex.")
    chunk_list_checksum: str | None = Field(
        default=None,
        description="For a transit copy stored without its SHA-256 (`BlockImageStore.put_image_blocks(transit="
        "True)`): SHA-256 of the store's list of the pieces it is made of, each verified when read, hex; what names "
        "it to `get_image_into(checksum='chunklist-sha256:...')`.",
    )


LocalPath = Path
"""A file on the host where the driver runs (a staging area, a mount point)."""

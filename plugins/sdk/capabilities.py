"""What a plugin can be used for and where: roles, scopes, locality, and the capabilities it claims."""

from enum import StrEnum


class Role(StrEnum):
    """What kind of storage the plugin provides to the cloud."""

    PRIMARY = "primary"
    """Volumes that virtual machines run on."""
    BACKUP = "backup"
    """Backups of volumes, kept apart from the primary storage."""
    IMAGE = "image"
    """Templates and ISOs (CloudStack's secondary storage)."""


class Scope(StrEnum):
    """How far one pool of this storage reaches (CloudStack's storage pool scopes)."""

    HOST = "host"
    CLUSTER = "cluster"
    ZONE = "zone"
    REGION = "region"


class Locality(StrEnum):
    """Whether the storage lives on one host or is shared between hosts."""

    LOCAL = "local"
    SHARED = "shared"


class Capability(StrEnum):
    """What the storage can do natively; the framework falls back (or refuses) for what a plugin does not claim."""

    SNAPSHOT = "snapshot"
    """Full snapshots of a volume."""
    DELTA_SNAPSHOT = "delta_snapshot"
    """Snapshots that keep only what changed since the previous one (a backing chain)."""
    REVERT_TO_SNAPSHOT = "revert_to_snapshot"
    """Revert a volume to a snapshot in place; without it the framework reverts by copy."""
    COALESCE = "coalesce"
    """Fold a delta layer into its parent to shorten a chain."""
    NATIVE_MIGRATION = "native_migration"
    """Move a volume between pools without going through backup storage."""
    CLONE = "clone"
    """Create a volume as a copy of another one."""
    RESIZE = "resize"
    """Grow a volume."""
    SHRINK = "shrink"
    """Shrink a volume, dropping the data past its new end (asked for explicitly: `--allow-shrink`); without it,
    volumes only grow."""
    TEMPLATE = "template"
    """Create a volume from a template (as a backing file or a full copy)."""
    COPY = "copy"
    """Copy a volume's bytes in from and out to a file, with progress."""
    LINKED_CLONE = "linked_clone"
    """A volume made from a template is an overlay on the pool's base copy of it (shares its blocks); without it,
    each volume is a full copy of the base."""
    BACKUP_SNAPSHOT = "backup_snapshot"
    """Back up snapshots (backup targets)."""
    INCREMENTAL_BACKUP = "incremental_backup"
    """Backups that store only what changed since a parent backup."""
    DATA_DISK_ONLY = "data_disk_only"
    """Only data disks, never root disks."""
    THIN_PROVISIONING = "thin_provisioning"
    """Volumes take space only as they are written."""
    IOPS_STATS = "iops_stats"
    """The storage reports IOPS."""


SNAPSHOT_CAPABILITIES = frozenset(
    {Capability.SNAPSHOT, Capability.DELTA_SNAPSHOT, Capability.REVERT_TO_SNAPSHOT, Capability.COALESCE}
)
"""Capabilities that make sense only for a plugin with the primary role (they act on its volumes)."""

PRIMARY_CAPABILITIES = frozenset(
    {
        Capability.NATIVE_MIGRATION,
        Capability.CLONE,
        Capability.RESIZE,
        Capability.SHRINK,
        Capability.TEMPLATE,
        Capability.COPY,
        Capability.LINKED_CLONE,
        Capability.DATA_DISK_ONLY,
    }
)
"""Capabilities that describe primary volumes."""

BACKUP_CAPABILITIES = frozenset({Capability.BACKUP_SNAPSHOT, Capability.INCREMENTAL_BACKUP})
"""Capabilities that describe a backup target."""

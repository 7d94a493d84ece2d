"""Messages of the backup domain: repositories, backups of snapshots and volumes, restores, verifies.

A backup lives in a repository (a backup-role plugin, its configuration and a zone, like CloudStack's
`addBackupRepository`). States follow CloudStack's: Allocated -> BackingUp -> BackedUp; BackedUp -> Restoring ->
BackedUp; Error; Removed. Every backup is logically full (its manifest lists every chunk); an incremental reads
only what changed since its parent's snapshot where the primary storage can tell. A repository's configuration
travels only in the commands that need it, marked `writeOnly` so the journal masks it.
"""

from enum import StrEnum
from uuid import UUID

from pydantic import Field

from schemas.envelope import Command, Event
from schemas.errors import ErrorInfo
from schemas.registry import message
from schemas.snapshot import SnapshotState
from schemas.storage import NAME_PATTERN, SECRET, PluginConfig


class BackupState(StrEnum):
    """A backup's state, with CloudStack's names (DESIGN §7, §10)."""

    ALLOCATED = "Allocated"
    BACKING_UP = "BackingUp"
    BACKED_UP = "BackedUp"
    RESTORING = "Restoring"
    ERROR = "Error"
    REMOVED = "Removed"


class BackupKind(StrEnum):
    """A FULL backup has no parent; an INCREMENTAL read only what changed since its parent (still logically full)."""

    FULL = "full"
    INCREMENTAL = "incremental"


class BackupFigures(Event):
    """What taking a backup cost (the base of the events that report it)."""

    bytes_read: int = Field(default=0, ge=0, description="Bytes read from primary storage.")
    bytes_written: int = Field(default=0, ge=0, description="Bytes written to the repository.")
    bytes_reused: int = Field(default=0, ge=0, description="Bytes of data the repository already held.")
    changed_blocks: bool = Field(default=False, description="True when only the changed blocks were read.")
    note: str | None = Field(default=None, description="How it read when not by changed blocks, and why.")


# ------------------------------------------------------------------------------------------------ repositories


@message("backup_repository.add")
class AddBackupRepository(Command):
    """Take a backup store into use for a zone: a backup-role plugin and its configuration."""

    repository_id: UUID = Field(description="The caller's id for the repository (the idempotency key).")
    name: str = Field(pattern=NAME_PATTERN, description="Operator-facing name.")
    plugin: str = Field(min_length=1, description="A plugin with the backup role (fsbackup, s3, ...).")
    config: PluginConfig = Field(
        repr=False, json_schema_extra=SECRET, description="The plugin's configuration. May hold secrets."
    )
    zone_id: UUID = Field(description="The zone whose volumes it backs up.")


@message("backup_repository.added")
class BackupRepositoryAdded(Event):
    """A repository is ready for backups."""

    repository_id: UUID
    name: str
    plugin: str
    zone_id: UUID


@message("backup_repository.add.failed")
class BackupRepositoryAddFailed(Event):
    """A repository was refused (unknown plugin, not a backup plugin, bad configuration, name taken)."""

    repository_id: UUID
    error: ErrorInfo


@message("backup_repository.remove")
class RemoveBackupRepository(Command):
    """Stop using a repository; refused while it holds backups."""

    repository_id: UUID


@message("backup_repository.removed")
class BackupRepositoryRemoved(Event):
    """A repository is no longer used."""

    repository_id: UUID


@message("backup_repository.remove.failed")
class BackupRepositoryRemoveFailed(Event):
    """A repository could not be removed."""

    repository_id: UUID
    error: ErrorInfo


# ----------------------------------------------------------------------------------------------------- backups


@message("backup.create")
class CreateBackup(Command):
    """Back up a volume (through a new snapshot, dropped afterwards unless kept) or one of its snapshots."""

    backup_id: UUID = Field(description="The caller's id for the backup (the idempotency key).")
    volume_id: UUID
    repository_id: UUID
    snapshot_id: UUID | None = Field(
        default=None, description="Back up this snapshot (CreatedOnPrimary); without it a snapshot is taken."
    )
    keep_snapshot: bool = Field(
        default=False,
        description="Keep the snapshot a volume backup takes. Without it the snapshot is deleted once a newer "
        "backup of the volume succeeds (until then it lets that backup read only what changed).",
    )
    schedule_id: UUID | None = Field(default=None, description="The schedule that took it, for its retention.")


@message("backup.created")
class BackupCreated(BackupFigures):
    """A backup is BackedUp."""

    backup_id: UUID
    volume_id: UUID
    snapshot_id: UUID
    repository_id: UUID
    kind: BackupKind
    parent_id: UUID | None = None
    size_bytes: int = Field(ge=0)


@message("backup.progressed")
class BackupProgressed(Event):
    """How far a backup's read, restore or verify has come (the agent publishes it at most every second while it
    runs; the operation's correlation id says which)."""

    backup_id: UUID
    done_bytes: int = Field(ge=0, description="Bytes of the volume gone through (read, or known unchanged).")
    total_bytes: int = Field(ge=0)


@message("backup.create.failed")
class BackupCreateFailed(Event):
    """A backup failed: it is in Error with the reason (or was never recorded) and its snapshot is usable again."""

    backup_id: UUID
    volume_id: UUID
    error: ErrorInfo


@message("backup.take")
class TakeBackup(Command):
    """A saga's step: record the backup, choose full or incremental, and have the pool's agent take it."""

    backup_id: UUID
    repository_id: UUID
    volume_id: UUID
    snapshot_id: UUID
    pool_id: UUID
    schedule_id: UUID | None = None
    anchor: bool = Field(
        default=False,
        description="The saga took the snapshot for this backup: it is kept as an anchor of later backups' "
        "changed-block reads (a delta chain needs its older snapshots) until released.",
    )
    release_anchors: bool = Field(
        default=False,
        description="This backup's snapshot starts a new chain (a full one): on success the anchors older backups "
        "of the volume kept are released, for the saga to delete.",
    )


@message("backup.taken")
class BackupTaken(BackupFigures):
    """The backup's data is in the repository and it is BackedUp (the step's reply)."""

    backup_id: UUID
    volume_id: UUID
    snapshot_id: UUID
    repository_id: UUID
    kind: BackupKind
    parent_id: UUID | None = None
    size_bytes: int = Field(ge=0)
    release_snapshots: tuple[UUID, ...] = Field(
        default=(), description="Snapshots older backups kept as anchors, no longer needed: the saga deletes them."
    )


@message("backup.delete")
class DeleteBackup(Command):
    """Delete a backup (Removed); chunks no other backup uses are freed. Other backups never depend on it."""

    backup_id: UUID


@message("backup.deleted")
class BackupDeleted(Event):
    """A backup is Removed."""

    backup_id: UUID


@message("backup.delete.failed")
class BackupDeleteFailed(Event):
    """A backup could not be deleted."""

    backup_id: UUID
    error: ErrorInfo


@message("backup.verify")
class VerifyBackup(Command):
    """Re-read every chunk of a backup and check its hash; a bad backup is marked so and refused for restores."""

    backup_id: UUID


@message("backup.verified")
class BackupVerified(Event):
    """What a verify found: `bad` lists each missing or corrupted chunk (empty when the backup is sound)."""

    backup_id: UUID
    chunks: int = Field(ge=0)
    bytes_checked: int = Field(ge=0)
    bad: tuple[str, ...] = ()


@message("backup.verify.failed")
class BackupVerifyFailed(Event):
    """A verify could not run."""

    backup_id: UUID
    error: ErrorInfo


@message("backup.state.changed")
class BackupStateChanged(Event):
    """A backup moved from one state to another (CloudStack's ResourceStateEvent)."""

    backup_id: UUID
    old_state: BackupState
    new_state: BackupState


# ----------------------------------------------------------------------------------------- garbage collection


@message("backup_repository.collect_garbage")
class CollectRepositoryGarbage(Command):
    """Free the chunks no backup of a repository references (left by deleted or crashed backups). Safe against
    backups being written meanwhile: then nothing is freed and a later collection does it."""

    repository_id: UUID


@message("backup_repository.garbage_collected")
class RepositoryGarbageCollected(Event):
    """What a collection freed; `deferred` when a backup was in flight and nothing could be freed."""

    repository_id: UUID
    freed_chunks: int = Field(ge=0)
    freed_bytes: int = Field(ge=0)
    deferred: bool = False


@message("backup_repository.collect_garbage.failed")
class RepositoryGarbageCollectFailed(Event):
    """A collection could not run."""

    repository_id: UUID
    error: ErrorInfo


# ------------------------------------------------------------------------------- the snapshot service's part


@message("snapshot.backup.begin")
class BeginSnapshotBackup(Command):
    """A saga's step: move a CreatedOnPrimary snapshot to BackingUp."""

    snapshot_id: UUID


@message("snapshot.backup.begun")
class SnapshotBackupBegun(Event):
    """A snapshot is BackingUp; where it lives."""

    snapshot_id: UUID
    volume_id: UUID
    pool_id: UUID
    size_bytes: int = Field(ge=0)


@message("snapshot.backup.end")
class EndSnapshotBackup(Command):
    """A saga's step: BackingUp -> BackedUp when the backup succeeded, back to CreatedOnPrimary when not."""

    snapshot_id: UUID
    succeeded: bool


@message("snapshot.backup.ended")
class SnapshotBackupEnded(Event):
    """A snapshot left BackingUp."""

    snapshot_id: UUID
    state: SnapshotState


@message("snapshot.backup.step.failed")
class SnapshotBackupStepFailed(Event):
    """A snapshot could not enter or leave BackingUp (it is in another state, or unknown)."""

    snapshot_id: UUID
    error: ErrorInfo

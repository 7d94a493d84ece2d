"""Messages of the backup domain: repositories, backups of snapshots and volumes, restores, verifies.

A backup lives in a repository (a backup-role plugin, its configuration and a zone, like CloudStack's
`addBackupRepository`). States follow CloudStack's: Allocated -> BackingUp -> BackedUp; BackedUp -> Restoring ->
BackedUp; Error; Removed. Every backup is logically full (its manifest lists every chunk); an incremental reads
only what changed since its parent's snapshot where the primary storage can tell. A repository's configuration
travels only in the commands that need it, marked `writeOnly` so the journal masks it.
"""

from datetime import datetime
from enum import StrEnum
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.agent import AgentCommand
from schemas.envelope import Command, Event
from schemas.errors import ErrorInfo
from schemas.registry import message
from schemas.snapshot import IntervalType, SnapshotState
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


# --------------------------------------------------------------------------------------------------- schedules


class KeepRules(BaseModel):
    """keep-last/-hourly/-daily/-weekly/-monthly/-yearly, applied in that order (Proxmox Backup Server's) on the
    schedule's clock; 0 turns a rule off."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    last: int = Field(default=0, ge=0, le=10000, description="Keep the newest N.")
    hourly: int = Field(default=0, ge=0, le=10000, description="Keep the newest backup of each of the last N hours.")
    daily: int = Field(default=0, ge=0, le=10000, description="...of each of the last N days.")
    weekly: int = Field(default=0, ge=0, le=10000, description="...of each of the last N ISO weeks.")
    monthly: int = Field(default=0, ge=0, le=10000, description="...of each of the last N months.")
    yearly: int = Field(default=0, ge=0, le=10000, description="...of each of the last N years.")

    @model_validator(mode="after")
    def _some_rule(self) -> "KeepRules":
        if not any((self.last, self.hourly, self.daily, self.weekly, self.monthly, self.yearly)):
            raise ValueError("give at least one keep rule above 0")
        return self


@message("backup_schedule.create")
class CreateBackupSchedule(Command):
    """Back a volume up on a schedule into a repository, keeping the newest `max_backups` of this schedule's backups.

    A volume may have several schedules (an hourly and a weekly one, say); each keeps its own backups.
    """

    schedule_id: UUID = Field(description="The caller's id for the schedule (the idempotency key).")
    volume_id: UUID
    repository_id: UUID
    interval_type: IntervalType
    schedule: str = Field(
        max_length=16,
        description="HOURLY `MM`; DAILY `MM:HH`; WEEKLY `MM:HH:D` (D 1-7, 1 = Sunday); MONTHLY `MM:HH:DD` "
        "(DD 1-28), as CloudStack writes it.",
    )
    timezone: str = Field(default="UTC", min_length=1, max_length=64, description="IANA time zone of the schedule.")
    max_backups: int = Field(ge=1, le=1000, description="How many of this schedule's backups to keep.")
    keep: KeepRules | None = Field(
        default=None,
        description="keep-* rules as well: a backup of the schedule goes once neither they nor max_backups keep it.",
    )


@message("backup_schedule.created")
class BackupScheduleCreated(Event):
    """A backup schedule is active; `next_run_at` is its first run (UTC)."""

    schedule_id: UUID
    volume_id: UUID
    repository_id: UUID
    interval_type: IntervalType
    schedule: str
    timezone: str
    max_backups: int = Field(ge=1)
    keep: KeepRules | None = None
    next_run_at: datetime


@message("backup_schedule.create.failed")
class BackupScheduleCreateFailed(Event):
    """A schedule was refused (a bad schedule or time zone, an unknown repository)."""

    schedule_id: UUID
    error: ErrorInfo


@message("backup_schedule.delete")
class DeleteBackupSchedule(Command):
    """Stop a schedule; the backups it took stay."""

    schedule_id: UUID


@message("backup_schedule.deleted")
class BackupScheduleDeleted(Event):
    """A schedule will not run again."""

    schedule_id: UUID


@message("backup_schedule.delete.failed")
class BackupScheduleDeleteFailed(Event):
    """A schedule could not be deleted."""

    schedule_id: UUID
    error: ErrorInfo


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


# ---------------------------------------------------------------------------------------------------- restores


@message("backup.restore")
class RestoreBackup(Command):
    """Restore a backup to a new volume (on a chosen pool) or in place over a volume whose VM is stopped."""

    restore_id: UUID = Field(description="The caller's id for the restore (the idempotency key).")
    backup_id: UUID
    volume_id: UUID = Field(description="The new volume's id, or the volume restored in place.")
    in_place: bool = Field(default=False, description="Overwrite `volume_id` (held; a safety snapshot first).")
    name: str | None = Field(default=None, pattern=NAME_PATTERN, description="The new volume's name.")
    zone_id: UUID | None = Field(default=None, description="The new volume's zone.")
    pool_id: UUID | None = Field(default=None, description="The new volume's pool (else the allocator picks).")
    host: str | None = Field(
        default=None,
        min_length=1,
        description="The host of the volume's VM: in place, checked to be stopped; a new volume is placed for it.",
    )
    cluster_id: str | None = Field(default=None, description="A new volume's cluster, if known.")
    vm_id: UUID | None = Field(default=None, description="In place: the volume's VM, if it has one.")

    @model_validator(mode="after")
    def _target(self) -> "RestoreBackup":
        if not self.in_place and (self.name is None or self.zone_id is None):
            raise ValueError("a restore to a new volume needs its name and zone_id")
        if self.vm_id is not None and self.host is None:
            raise ValueError("a volume with a VM is restored with the VM's host, to check that it is stopped")
        return self


@message("backup.restored")
class BackupRestored(Event):
    """A volume holds the backup's data, checked against the backup's hashes, and is Ready."""

    restore_id: UUID
    backup_id: UUID
    volume_id: UUID
    in_place: bool


@message("backup.restore.failed")
class BackupRestoreFailed(Event):
    """A restore failed and was undone: no new volume is left; a volume restored in place holds what it held."""

    restore_id: UUID
    backup_id: UUID
    error: ErrorInfo


@message("backup.restore.step.failed")
class RestoreStepFailed(Event):
    """A step of a restore was refused or failed (the restore saga undoes what it did)."""

    backup_id: UUID
    error: ErrorInfo


@message("backup.restore.begin")
class BeginRestore(Command):
    """A saga's step: hold a BackedUp backup in Restoring (refused for a backup a verify found bad)."""

    backup_id: UUID


@message("backup.restore.begun")
class RestoreBegun(Event):
    """A backup is Restoring; its volume's size and its source volume."""

    backup_id: UUID
    volume_id: UUID
    size_bytes: int = Field(ge=0)


@message("backup.restore.end")
class EndRestore(Command):
    """A saga's step: bring a Restoring backup back to BackedUp."""

    backup_id: UUID
    succeeded: bool


@message("backup.restore.ended")
class RestoreEnded(Event):
    """A backup is BackedUp again."""

    backup_id: UUID


@message("backup.restore_to_volume")
class RestoreBackupToVolume(Command):
    """A saga's step: have the pool's agent write the backup over a held volume and check it against the hashes."""

    backup_id: UUID
    volume_id: UUID
    pool_id: UUID | None = Field(default=None, description="The volume's pool; else the one the service knows.")


@message("backup.restored_to_volume")
class BackupRestoredToVolume(Event):
    """The volume's data is the backup's, every chunk checked (the step's reply)."""

    backup_id: UUID
    volume_id: UUID
    bytes_written: int = Field(ge=0)
    chunks_checked: int = Field(ge=0)


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


# --------------------------------------------------------------------------------- agent data-plane commands


class RepositoryCommand(AgentCommand):
    """An agent command that works on a repository: it carries the plugin and its configuration."""

    repository_id: UUID
    plugin: str = Field(min_length=1)
    config: PluginConfig = Field(
        repr=False, json_schema_extra=SECRET, description="The repository's configuration. May hold secrets."
    )


@message("agent.backup.take")
class BackupSnapshotOnPool(RepositoryCommand):
    """Back a snapshot up into the repository; against `parent_backup_id`, reading only what changed since
    `since_snapshot_id` where the pool's plugin can tell."""

    pool_id: UUID
    volume_id: UUID
    snapshot_id: UUID
    backup_id: UUID
    parent_backup_id: UUID | None = None
    since_snapshot_id: UUID | None = None


@message("agent.backup.taken")
class SnapshotBackedUpOnPool(BackupFigures):
    """A snapshot's data is in the repository."""

    backup_id: UUID
    size_bytes: int = Field(ge=0)


@message("agent.backup.take.failed")
class SnapshotBackupOnPoolFailed(Event):
    """A backup could not be taken; nothing of it is visible in the repository."""

    backup_id: UUID
    error: ErrorInfo


@message("agent.backup.restore")
class RestoreBackupOnPool(RepositoryCommand):
    """Write a backup over a volume of the pool, then check the volume's data against the backup's hashes."""

    pool_id: UUID
    volume_id: UUID
    backup_id: UUID


@message("agent.backup.restored")
class BackupRestoredOnPool(Event):
    """A volume's data is the backup's, checked."""

    backup_id: UUID
    volume_id: UUID
    bytes_written: int = Field(ge=0)
    chunks_checked: int = Field(ge=0)


@message("agent.backup.restore.failed")
class BackupRestoreOnPoolFailed(Event):
    """A restore failed on the pool."""

    backup_id: UUID
    volume_id: UUID
    error: ErrorInfo


@message("agent.backup.delete")
class DeleteBackupOnStore(RepositoryCommand):
    """Delete a backup from the repository (succeeds if it is gone)."""

    backup_id: UUID


@message("agent.backup.deleted")
class BackupDeletedOnStore(Event):
    """A backup is gone from the repository."""

    backup_id: UUID


@message("agent.backup.delete.failed")
class BackupDeleteOnStoreFailed(Event):
    """A backup could not be deleted from the repository."""

    backup_id: UUID
    error: ErrorInfo


@message("agent.backup.collect_garbage")
class CollectGarbageOnStore(RepositoryCommand):
    """Free the repository's chunks that no manifest references (none while a backup is in flight)."""


@message("agent.backup.garbage_collected")
class GarbageCollectedOnStore(Event):
    """What a collection freed in the repository."""

    repository_id: UUID
    freed_chunks: int = Field(ge=0)
    freed_bytes: int = Field(ge=0)
    deferred: bool = False


@message("agent.backup.collect_garbage.failed")
class GarbageCollectOnStoreFailed(Event):
    """A collection could not run in the repository."""

    repository_id: UUID
    error: ErrorInfo


@message("agent.backup.verify")
class VerifyBackupOnStore(RepositoryCommand):
    """Read every chunk of a backup back and check its hash."""

    backup_id: UUID


@message("agent.backup.verified")
class BackupVerifiedOnStore(Event):
    """What a verify found in the repository."""

    backup_id: UUID
    chunks: int = Field(ge=0)
    bytes_checked: int = Field(ge=0)
    bad: tuple[str, ...] = ()


@message("agent.backup.verify.failed")
class BackupVerifyOnStoreFailed(Event):
    """A verify could not run."""

    backup_id: UUID
    error: ErrorInfo

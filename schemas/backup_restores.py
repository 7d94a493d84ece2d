"""Messages of restores: a backup restored to a new volume or over an existing one (the `backup.restore` saga and
the backup and storage services' parts in it)."""

from uuid import UUID

from pydantic import Field, model_validator

from schemas.envelope import Command, Event
from schemas.errors import ErrorInfo
from schemas.registry import message
from schemas.storage import NAME_PATTERN

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

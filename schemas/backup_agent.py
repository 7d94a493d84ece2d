"""The agent's data-plane commands of the backup domain: back a snapshot up into a repository, restore, delete,
verify and collect garbage there (each carries the repository's configuration, write-only)."""

from uuid import UUID

from pydantic import Field

from schemas.agent import AgentCommand
from schemas.backup import BackupFigures
from schemas.envelope import Event
from schemas.errors import ErrorInfo
from schemas.registry import message
from schemas.storage import SECRET, PluginConfig

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

"""The backup service's handler tables: which message goes to which handler. Read this first.

Every handler is `handler(message, envelope, uow, deps)`, the service's `BackupDeps` last; `bootstrap` binds them.
The handlers live in one module per use case: `repositories` (and what the service knows of pools and volumes),
`backups` (take, delete, verify, and the agents' answers), `restores` (the restore saga's steps),
`schedules` (and their retention; `scheduler` runs them), `garbage` (a repository's collection).
"""

from schemas import Message
from schemas.backup import (
    AddBackupRepository,
    CollectRepositoryGarbage,
    DeleteBackup,
    RemoveBackupRepository,
    TakeBackup,
    VerifyBackup,
)
from schemas.backup_agent import (
    BackupDeletedOnStore,
    BackupDeleteOnStoreFailed,
    BackupRestoredOnPool,
    BackupRestoreOnPoolFailed,
    BackupVerifiedOnStore,
    BackupVerifyOnStoreFailed,
    GarbageCollectedOnStore,
    GarbageCollectOnStoreFailed,
    SnapshotBackedUpOnPool,
    SnapshotBackupOnPoolFailed,
)
from schemas.backup_restores import BeginRestore, EndRestore, RestoreBackupToVolume
from schemas.backup_schedules import CreateBackupSchedule, DeleteBackupSchedule
from schemas.storage import PoolAdded, VolumeCreated
from services.backup import backups, garbage, repositories, restores, schedules
from services.backup.deps import BackupDeps
from services.runtime.handlers import ContextHandler

COMMAND_HANDLERS: dict[type[Message], ContextHandler[BackupDeps]] = {
    AddBackupRepository: repositories.add_repository,
    RemoveBackupRepository: repositories.remove_repository,
    TakeBackup: backups.take_backup,
    DeleteBackup: backups.delete_backup,
    VerifyBackup: backups.verify_backup,
    BeginRestore: restores.begin_restore,
    RestoreBackupToVolume: restores.restore_to_volume,
    EndRestore: restores.end_restore,
    CreateBackupSchedule: schedules.create_schedule,
    DeleteBackupSchedule: schedules.delete_schedule,
    CollectRepositoryGarbage: garbage.collect_garbage,
}

EVENT_HANDLERS: dict[type[Message], ContextHandler[BackupDeps]] = {
    # the agents' answers
    SnapshotBackedUpOnPool: backups.on_backup_taken,
    SnapshotBackupOnPoolFailed: backups.on_backup_take_failed,
    BackupDeletedOnStore: backups.on_backup_deleted,
    BackupDeleteOnStoreFailed: backups.on_backup_delete_failed,
    BackupVerifiedOnStore: backups.on_backup_verified,
    BackupVerifyOnStoreFailed: backups.on_backup_verify_failed,
    BackupRestoredOnPool: restores.on_backup_restored,
    BackupRestoreOnPoolFailed: restores.on_backup_restore_failed,
    GarbageCollectedOnStore: garbage.on_garbage_collected,
    GarbageCollectOnStoreFailed: garbage.on_garbage_collect_failed,
    # what the service knows of others
    PoolAdded: repositories.on_pool_added,
    VolumeCreated: repositories.on_volume_created,
}

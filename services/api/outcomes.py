"""The API daemon's handler table: the outcome events of the operations it starts, recorded on their row by
correlation id, so that an operation is finished in `api.operations` even when the process that followed it
stopped before its outcome arrived. Only an outcome of a type the operation awaits (its row's `awaiting`) ends it:
another event of the same correlation (a saga's step) does not, and an outcome of a command the API did not send
updates nothing.

`RECORDED` is the one list of (success, failure) pairs an operation may wait for: `Tracker.sent` refuses a pair
that is not in it, so no route can start an operation that a restart of the API would leave running for ever."""

import json

from bus.ports import UnitOfWork, deferred_writes
from schemas import Envelope, Event, Message
from schemas.backup import (
    BackupCreated,
    BackupCreateFailed,
    BackupDeleted,
    BackupDeleteFailed,
    BackupRepositoryAdded,
    BackupRepositoryAddFailed,
    BackupRepositoryRemoved,
    BackupRepositoryRemoveFailed,
    BackupVerified,
    BackupVerifyFailed,
    RepositoryGarbageCollected,
    RepositoryGarbageCollectFailed,
)
from schemas.backup_restores import BackupRestored, BackupRestoreFailed
from schemas.backup_schedules import (
    BackupScheduleCreated,
    BackupScheduleCreateFailed,
    BackupScheduleDeleted,
    BackupScheduleDeleteFailed,
)
from schemas.errors import ErrorInfo
from schemas.image import (
    ImageCopyAccepted,
    ImageCopyFailed,
    ImageDeleted,
    ImageDeleteFailed,
    ImageDownloaded,
    ImageDownloadFailed,
    ImageRegistered,
    ImageRegisterFailed,
    ImageStoreAdded,
    ImageStoreAddFailed,
    ImageStoreRemoved,
    ImageStoreRemoveFailed,
)
from schemas.image_exports import ImageExported, ImageExportFailed
from schemas.migration import VolumeMigrated, VolumeMigrateFailed
from schemas.pool_settings import PoolUpdated, PoolUpdateFailed
from schemas.snapshot import (
    SnapshotCreated,
    SnapshotCreateFailed,
    SnapshotDeleted,
    SnapshotDeleteFailed,
    SnapshotPolicyCreated,
    SnapshotPolicyCreateFailed,
    SnapshotPolicyDeleted,
    SnapshotPolicyDeleteFailed,
    SnapshotReverted,
    SnapshotRevertFailed,
    VmReverted,
    VmRevertFailed,
    VmSnapshotCreated,
    VmSnapshotCreateFailed,
)
from schemas.storage import (
    PoolAdded,
    PoolAddFailed,
    VolumeCreated,
    VolumeCreateFailed,
    VolumeDeleted,
    VolumeDeleteFailed,
    VolumeResized,
    VolumeResizeFailed,
)
from services.runtime.handlers import ContextHandler

SCHEMA = "api"
RECORD = (
    f"UPDATE {SCHEMA}.operations SET status = $2, result = $3::jsonb, error = $4::jsonb, finished_at = now() "
    f"WHERE correlation_id = $1 AND status = 'running' AND $5 = ANY(awaiting)"
)
RECORDED: tuple[tuple[type[Event], type[Event]], ...] = (
    (PoolAdded, PoolAddFailed),
    (PoolUpdated, PoolUpdateFailed),
    (VolumeCreated, VolumeCreateFailed),
    (VolumeDeleted, VolumeDeleteFailed),
    (VolumeResized, VolumeResizeFailed),
    (VolumeMigrated, VolumeMigrateFailed),
    (SnapshotCreated, SnapshotCreateFailed),
    (SnapshotDeleted, SnapshotDeleteFailed),
    (SnapshotReverted, SnapshotRevertFailed),
    (SnapshotPolicyCreated, SnapshotPolicyCreateFailed),
    (SnapshotPolicyDeleted, SnapshotPolicyDeleteFailed),
    (VmSnapshotCreated, VmSnapshotCreateFailed),
    (VmReverted, VmRevertFailed),
    (BackupRepositoryAdded, BackupRepositoryAddFailed),
    (BackupRepositoryRemoved, BackupRepositoryRemoveFailed),
    (BackupCreated, BackupCreateFailed),
    (BackupDeleted, BackupDeleteFailed),
    (BackupVerified, BackupVerifyFailed),
    (BackupRestored, BackupRestoreFailed),
    (BackupScheduleCreated, BackupScheduleCreateFailed),
    (BackupScheduleDeleted, BackupScheduleDeleteFailed),
    (RepositoryGarbageCollected, RepositoryGarbageCollectFailed),
    (ImageStoreAdded, ImageStoreAddFailed),
    (ImageStoreRemoved, ImageStoreRemoveFailed),
    (ImageRegistered, ImageRegisterFailed),
    (ImageDownloaded, ImageDownloadFailed),
    (ImageCopyAccepted, ImageCopyFailed),
    (ImageExported, ImageExportFailed),
    (ImageDeleted, ImageDeleteFailed),
)


def is_recorded(success: type[Event], failure: type[Event]) -> bool:
    """Whether this daemon's consumer finishes an operation that waits for `success` or `failure`."""
    return (success, failure) in RECORDED


@deferred_writes
async def record_success(message: Message, envelope: Envelope, uow: UnitOfWork, context: None) -> None:
    """An operation's command succeeded."""
    uow.defer(
        RECORD, envelope.correlation_id, "succeeded", message.model_dump_json(exclude={"config"}), None, envelope.type
    )


@deferred_writes
async def record_failure(message: Message, envelope: Envelope, uow: UnitOfWork, context: None) -> None:
    """An operation's command failed: its error (class, code, message, field; never a value), as the process that
    follows an operation records it (`services.api.errors.described`)."""
    error = getattr(message, "error", None)
    info = (
        error
        if isinstance(error, ErrorInfo)
        else ErrorInfo(code="UNKNOWN", error_class=type(message).__name__, message=envelope.type)
    )
    described = {"class": info.error_class, "code": info.code, "message": info.message, "field": info.field}
    uow.defer(RECORD, envelope.correlation_id, "failed", None, json.dumps(described), envelope.type)


EVENT_HANDLERS: dict[type[Message], ContextHandler[None]] = {
    event: handler
    for success, failure in RECORDED
    for event, handler in ((success, record_success), (failure, record_failure))
}

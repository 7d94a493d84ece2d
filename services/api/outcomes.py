"""The API daemon's handler table: the outcome events of the operations it starts, recorded on their row by
correlation id, so that an operation is finished in `api.operations` even when the process that followed it
stopped before its outcome arrived. An outcome of a command the API did not send updates nothing."""

from bus.ports import UnitOfWork, deferred_writes
from schemas import Envelope, Message
from schemas.errors import ErrorInfo
from schemas.snapshot import SnapshotCreated, SnapshotCreateFailed, SnapshotDeleted, SnapshotDeleteFailed
from schemas.storage import (
    PoolAdded,
    PoolAddFailed,
    VolumeCreated,
    VolumeCreateFailed,
    VolumeDeleted,
    VolumeDeleteFailed,
)
from services.runtime.handlers import ContextHandler

SCHEMA = "api"
RECORD = (
    f"UPDATE {SCHEMA}.operations SET status = $2, result = $3::jsonb, error = $4::jsonb, finished_at = now() "
    f"WHERE correlation_id = $1 AND status = 'running'"
)


@deferred_writes
async def record_success(message: Message, envelope: Envelope, uow: UnitOfWork, context: None) -> None:
    """An operation's command succeeded."""
    uow.defer(RECORD, envelope.correlation_id, "succeeded", message.model_dump_json(exclude={"config"}), None)


@deferred_writes
async def record_failure(message: Message, envelope: Envelope, uow: UnitOfWork, context: None) -> None:
    """An operation's command failed: its error (class, code, message, field; never a value)."""
    error = getattr(message, "error", None)
    described = (
        error.model_dump_json()
        if isinstance(error, ErrorInfo)
        else ErrorInfo(code="UNKNOWN", error_class=type(message).__name__, message=envelope.type).model_dump_json()
    )
    uow.defer(RECORD, envelope.correlation_id, "failed", None, described)


EVENT_HANDLERS: dict[type[Message], ContextHandler[None]] = {
    PoolAdded: record_success,
    PoolAddFailed: record_failure,
    VolumeCreated: record_success,
    VolumeCreateFailed: record_failure,
    VolumeDeleted: record_success,
    VolumeDeleteFailed: record_failure,
    SnapshotCreated: record_success,
    SnapshotCreateFailed: record_failure,
    SnapshotDeleted: record_success,
    SnapshotDeleteFailed: record_failure,
}

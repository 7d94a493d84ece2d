"""A snapshot being backed up, as the backup saga's steps: CreatedOnPrimary -> BackingUp, then BackedUp when the
backup succeeded or back to CreatedOnPrimary when it did not (never left in BackingUp, CloudStack #8423)."""

from uuid import UUID

from bus.ports import UnitOfWork
from schemas import Envelope, Event, Message
from schemas.backup import (
    BeginSnapshotBackup,
    EndSnapshotBackup,
    SnapshotBackupBegun,
    SnapshotBackupEnded,
    SnapshotBackupStepFailed,
)
from schemas.errors import StrataError
from schemas.snapshot import SnapshotState
from services.domain.snapshots import SNAPSHOT_STATES, SnapshotEvent
from services.snapshot import repository as repo
from services.snapshot.deps import SnapshotDeps
from services.snapshot.requests import Requester, answer, refusing
from services.snapshot.snapshots import state_changed


async def begin_snapshot_backup(
    command: BeginSnapshotBackup, envelope: Envelope, uow: UnitOfWork, deps: SnapshotDeps
) -> Message | None:
    """CreatedOnPrimary -> BackingUp (already BackingUp: the same answer); say where the snapshot lives."""

    async def body() -> Message | None:
        requester = Requester.of(envelope)
        snapshot = await repo.get_snapshot(uow.connection, command.snapshot_id, lock=True)
        if snapshot.state is not SnapshotState.BACKING_UP:
            new = SNAPSHOT_STATES.next_state(snapshot.snapshot_id, snapshot.state, SnapshotEvent.BACKUP_REQUESTED)
            await repo.update_snapshot(uow.connection, snapshot.snapshot_id, new)
            state_changed(uow, requester, snapshot.snapshot_id, snapshot.state, new)
        begun = SnapshotBackupBegun(
            snapshot_id=snapshot.snapshot_id,
            volume_id=snapshot.volume_id,
            pool_id=snapshot.pool_id,
            size_bytes=snapshot.size_bytes,
        )
        answer(uow, requester, begun)
        return begun

    return await refusing(uow, envelope, lambda error: _ended(command.snapshot_id, error), body)


async def end_snapshot_backup(
    command: EndSnapshotBackup, envelope: Envelope, uow: UnitOfWork, deps: SnapshotDeps
) -> Message | None:
    """BackingUp -> BackedUp or back to CreatedOnPrimary (already out of BackingUp: the same answer)."""

    async def body() -> Message | None:
        requester = Requester.of(envelope)
        snapshot = await repo.get_snapshot(uow.connection, command.snapshot_id, lock=True)
        state = snapshot.state
        if state is SnapshotState.BACKING_UP:
            outcome = SnapshotEvent.OPERATION_SUCCEEDED if command.succeeded else SnapshotEvent.OPERATION_FAILED
            state = SNAPSHOT_STATES.next_state(snapshot.snapshot_id, snapshot.state, outcome)
            await repo.update_snapshot(uow.connection, snapshot.snapshot_id, state)
            state_changed(uow, requester, snapshot.snapshot_id, snapshot.state, state)
        ended = SnapshotBackupEnded(snapshot_id=snapshot.snapshot_id, state=state)
        answer(uow, requester, ended)
        return ended

    return await refusing(uow, envelope, lambda error: _ended(command.snapshot_id, error), body)


def _ended(snapshot_id: UUID, error: StrataError) -> Event:
    return SnapshotBackupStepFailed(snapshot_id=snapshot_id, error=error.info())

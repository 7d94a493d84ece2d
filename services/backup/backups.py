"""Backups: take (full every `backup.full.every`, incremental on the newest backup otherwise), delete, verify.

Load, decide (services/domain/backups), record, hand the work to an agent that reaches the pool and the repository;
the agent's answer (the `on_...` handlers) finishes the transition and answers whoever asked. A failed backup ends
in Error with the reason.
"""

from uuid import UUID

from bus.ports import UnitOfWork
from schemas import Envelope, Event
from schemas.backup import (
    BackupCreateFailed,
    BackupDeleted,
    BackupDeleteFailed,
    BackupState,
    BackupStateChanged,
    BackupTaken,
    BackupVerified,
    BackupVerifyFailed,
    DeleteBackup,
    TakeBackup,
    VerifyBackup,
)
from schemas.backup_agent import (
    BackupDeletedOnStore,
    BackupDeleteOnStoreFailed,
    BackupSnapshotOnPool,
    BackupVerifiedOnStore,
    BackupVerifyOnStoreFailed,
    DeleteBackupOnStore,
    SnapshotBackedUpOnPool,
    SnapshotBackupOnPoolFailed,
    VerifyBackupOnStore,
)
from schemas.errors import AlreadyExists, FailedPrecondition, StrataError
from services.backup import repository as repo
from services.backup.deps import BackupDeps
from services.backup.repositories import open_config
from services.backup.requests import Requester, announce, answer, refuse, refusing, take, to_agent
from services.backup.schedules import apply_retention
from services.domain.backups import BACKUP_STATES, BackupEvent, plan_backup

TAKE = "take"
DELETE = "delete"
VERIFY = "verify"


def state_changed(uow: UnitOfWork, requester: Requester, backup_id: UUID, old: BackupState, new: BackupState) -> None:
    """Publish a backup's move (CloudStack's ResourceStateEvent)."""
    announce(uow, requester, BackupStateChanged(backup_id=backup_id, old_state=old, new_state=new))


async def move(
    uow: UnitOfWork, requester: Requester, backup: repo.BackupRow, event: BackupEvent, **columns: object
) -> BackupState:
    """Apply `event` to the backup (refused if illegal), record and announce the move."""
    new = BACKUP_STATES.next_state(backup.backup_id, backup.state, event)
    await repo.set_state(uow.connection, backup.backup_id, new, **columns)
    state_changed(uow, requester, backup.backup_id, backup.state, new)
    return new


async def take_backup(command: TakeBackup, envelope: Envelope, uow: UnitOfWork, deps: BackupDeps) -> None:
    """Record the backup (BackingUp), full or incremental, and have the pool's agent take it."""

    def failed(error: StrataError) -> Event:
        return BackupCreateFailed(backup_id=command.backup_id, volume_id=command.volume_id, error=error.info())

    await refusing(uow, envelope, failed, lambda: _take(command, envelope, uow, deps))


async def _take(command: TakeBackup, envelope: Envelope, uow: UnitOfWork, deps: BackupDeps) -> None:
    connection = uow.connection
    requester = Requester.of(envelope)
    backup = await repo.find_backup(connection, command.backup_id, lock=True)
    if backup is not None:
        if (backup.volume_id, backup.snapshot_id) != (command.volume_id, command.snapshot_id):
            raise AlreadyExists(f"backup {command.backup_id} exists for another snapshot", field="backup_id")
        if backup.state is BackupState.BACKED_UP:
            answer(uow, requester, await _taken(connection, backup))
            return
        if backup.state is not BackupState.BACKING_UP:
            raise FailedPrecondition(f"backup {backup.backup_id} is {backup.state}", field="backup_id")
    else:
        await repo.get_repository(connection, command.repository_id)
        latest = await repo.latest_backup(connection, command.volume_id, command.repository_id)
        plan = plan_backup(latest, full_every=deps.full_every)
        state = BACKUP_STATES.next_state(command.backup_id, BackupState.ALLOCATED, BackupEvent.BACKUP_REQUESTED)
        backup = repo.BackupRow(
            backup_id=command.backup_id,
            repository_id=command.repository_id,
            volume_id=command.volume_id,
            snapshot_id=command.snapshot_id,
            pool_id=command.pool_id,
            kind=plan.kind,
            parent_id=plan.parent.backup_id if plan.parent else None,
            series=plan.series,
            state=state,
            size_bytes=0,
            verify_bad=None,
        )
        await repo.insert_backup(
            connection,
            backup,
            schedule_id=command.schedule_id,
            anchor=command.anchor,
            release_anchors=command.release_anchors,
            at=deps.clock(),
        )
        state_changed(uow, requester, backup.backup_id, BackupState.ALLOCATED, state)
    repository = await repo.get_repository(connection, backup.repository_id)
    since = None
    if backup.parent_id is not None:
        parent = await repo.get_backup(connection, backup.parent_id)
        since = parent.snapshot_id
    command_to_agent = BackupSnapshotOnPool(
        repository_id=repository.repository_id,
        plugin=repository.plugin,
        config=open_config(deps, repository),
        pool_id=backup.pool_id,
        volume_id=backup.volume_id,
        snapshot_id=backup.snapshot_id,
        backup_id=backup.backup_id,
        parent_backup_id=backup.parent_id,
        since_snapshot_id=since,
        **await repo.pool_route(connection, backup.pool_id),
    )
    await to_agent(uow, requester, command_to_agent, kind=TAKE, backup_id=backup.backup_id)


async def _taken(connection: repo.Connection, backup: repo.BackupRow, released: tuple[UUID, ...] = ()) -> BackupTaken:
    row = await connection.fetchrow(
        "SELECT size_bytes, bytes_read, bytes_written, bytes_reused, changed_blocks, note FROM backup.backups "
        "WHERE backup_id = $1",
        backup.backup_id,
    )
    return BackupTaken(
        backup_id=backup.backup_id,
        volume_id=backup.volume_id,
        snapshot_id=backup.snapshot_id,
        repository_id=backup.repository_id,
        kind=backup.kind,
        parent_id=backup.parent_id,
        size_bytes=row["size_bytes"],
        bytes_read=row["bytes_read"],
        bytes_written=row["bytes_written"],
        bytes_reused=row["bytes_reused"],
        changed_blocks=row["changed_blocks"],
        note=row["note"],
        release_snapshots=released,
    )


async def on_backup_taken(event: SnapshotBackedUpOnPool, envelope: Envelope, uow: UnitOfWork, deps: BackupDeps) -> None:
    """BackedUp with what it cost; older anchors released; answer the requesters."""
    requesters = await take(uow, TAKE, event.backup_id, envelope)
    backup = await repo.get_backup(uow.connection, event.backup_id, lock=True)
    released: tuple[UUID, ...] = ()
    if backup.state is BackupState.BACKING_UP and await _starts_a_chain(uow, event.backup_id):
        released = tuple(await repo.release_anchors(uow.connection, backup))
    if backup.state is BackupState.BACKING_UP:
        await move(
            uow,
            requesters[0],
            backup,
            BackupEvent.OPERATION_SUCCEEDED,
            size_bytes=event.size_bytes,
            bytes_read=event.bytes_read,
            bytes_written=event.bytes_written,
            bytes_reused=event.bytes_reused,
            changed_blocks=event.changed_blocks,
            note=event.note,
            finished_at=deps.clock(),
        )
        await apply_retention(uow, requesters[0], backup.backup_id)
    taken = await _taken(uow.connection, backup, released)
    for requester in requesters:
        answer(uow, requester, taken)


async def _starts_a_chain(uow: UnitOfWork, backup_id: UUID) -> bool:
    return bool(
        await uow.connection.fetchval("SELECT release_anchors FROM backup.backups WHERE backup_id = $1", backup_id)
    )


async def on_backup_take_failed(
    event: SnapshotBackupOnPoolFailed, envelope: Envelope, uow: UnitOfWork, deps: BackupDeps
) -> None:
    """Error with the reason; the requesters learn why."""
    requesters = await take(uow, TAKE, event.backup_id, envelope)
    backup = await repo.get_backup(uow.connection, event.backup_id, lock=True)
    if backup.state is BackupState.BACKING_UP:
        await move(
            uow,
            requesters[0],
            backup,
            BackupEvent.OPERATION_FAILED,
            error=event.error.message,
            finished_at=deps.clock(),
        )
    failed = BackupCreateFailed(backup_id=backup.backup_id, volume_id=backup.volume_id, error=event.error)
    for requester in requesters:
        refuse(uow, requester, failed, event.error)


async def delete_backup(command: DeleteBackup, envelope: Envelope, uow: UnitOfWork, deps: BackupDeps) -> None:
    """Delete a BackedUp (or failed) backup from its repository; it is Removed when the agent has done it."""

    def failed(error: StrataError) -> Event:
        return BackupDeleteFailed(backup_id=command.backup_id, error=error.info())

    async def body() -> None:
        requester = Requester.of(envelope)
        backup = await repo.get_backup(uow.connection, command.backup_id, lock=True)
        if backup.state is BackupState.REMOVED:
            answer(uow, requester, BackupDeleted(backup_id=backup.backup_id))
            return
        BACKUP_STATES.next_state(backup.backup_id, backup.state, BackupEvent.REMOVE_REQUESTED)  # refuses if illegal
        await _to_store(deps, uow, requester, backup, command=DeleteBackupOnStore, kind=DELETE)

    await refusing(uow, envelope, failed, body)


async def _to_store(
    deps: BackupDeps,
    uow: UnitOfWork,
    requester: Requester,
    backup: repo.BackupRow,
    *,
    command: type[DeleteBackupOnStore] | type[VerifyBackupOnStore],
    kind: str,
) -> None:
    """Send a repository command about `backup` to an agent of the pool it was taken from."""
    repository = await repo.get_repository(uow.connection, backup.repository_id)
    sent = command(
        repository_id=repository.repository_id,
        plugin=repository.plugin,
        config=open_config(deps, repository),
        backup_id=backup.backup_id,
        **await repo.pool_route(uow.connection, backup.pool_id),
    )
    await to_agent(uow, requester, sent, kind=kind, backup_id=backup.backup_id)


async def on_backup_deleted(event: BackupDeletedOnStore, envelope: Envelope, uow: UnitOfWork, deps: BackupDeps) -> None:
    """Removed; answer the requesters."""
    requesters = await take(uow, DELETE, event.backup_id, envelope)
    backup = await repo.get_backup(uow.connection, event.backup_id, lock=True)
    if BACKUP_STATES.allows(backup.state, BackupEvent.REMOVE_REQUESTED):
        await move(uow, requesters[0], backup, BackupEvent.REMOVE_REQUESTED, finished_at=deps.clock())
    for requester in requesters:
        answer(uow, requester, BackupDeleted(backup_id=event.backup_id))


async def on_backup_delete_failed(
    event: BackupDeleteOnStoreFailed, envelope: Envelope, uow: UnitOfWork, deps: BackupDeps
) -> None:
    """The backup stays as it was; the requesters learn why."""
    for requester in await take(uow, DELETE, event.backup_id, envelope):
        refuse(uow, requester, BackupDeleteFailed(backup_id=event.backup_id, error=event.error), event.error)


async def verify_backup(command: VerifyBackup, envelope: Envelope, uow: UnitOfWork, deps: BackupDeps) -> None:
    """Have an agent re-read every chunk of a BackedUp backup."""

    def failed(error: StrataError) -> Event:
        return BackupVerifyFailed(backup_id=command.backup_id, error=error.info())

    async def body() -> None:
        backup = await repo.get_backup(uow.connection, command.backup_id)
        if backup.state not in (BackupState.BACKED_UP, BackupState.RESTORING):
            raise FailedPrecondition(f"backup {backup.backup_id} is {backup.state}: only a backup can be verified")
        await _to_store(deps, uow, Requester.of(envelope), backup, command=VerifyBackupOnStore, kind=VERIFY)

    await refusing(uow, envelope, failed, body)


async def on_backup_verified(
    event: BackupVerifiedOnStore, envelope: Envelope, uow: UnitOfWork, deps: BackupDeps
) -> None:
    """Record what the verify found (a bad backup is refused for restores from then on); answer."""
    requesters = await take(uow, VERIFY, event.backup_id, envelope)
    await repo.set_verified(uow.connection, event.backup_id, list(event.bad), deps.clock())
    verified = BackupVerified(
        backup_id=event.backup_id, chunks=event.chunks, bytes_checked=event.bytes_checked, bad=event.bad
    )
    for requester in requesters:
        answer(uow, requester, verified)


async def on_backup_verify_failed(
    event: BackupVerifyOnStoreFailed, envelope: Envelope, uow: UnitOfWork, deps: BackupDeps
) -> None:
    """The requesters learn why the verify could not run."""
    for requester in await take(uow, VERIFY, event.backup_id, envelope):
        refuse(uow, requester, BackupVerifyFailed(backup_id=event.backup_id, error=event.error), event.error)

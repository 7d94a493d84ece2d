"""Restores, as the restore saga's steps: hold the backup in Restoring, have the agent of the target volume's pool
write it and check it against the backup's hashes, bring the backup back to BackedUp.

A backup that a verify found bad is refused before anything is touched.
"""

from uuid import UUID

from bus.ports import UnitOfWork
from schemas import Envelope, Event
from schemas.backup import BackupState
from schemas.backup_agent import BackupRestoredOnPool, BackupRestoreOnPoolFailed, RestoreBackupOnPool
from schemas.backup_restores import (
    BackupRestoredToVolume,
    BeginRestore,
    EndRestore,
    RestoreBackupToVolume,
    RestoreBegun,
    RestoreEnded,
    RestoreStepFailed,
)
from schemas.errors import FailedPrecondition, StrataError
from services.backup import repository as repo
from services.backup.backups import move
from services.backup.deps import BackupDeps
from services.backup.repositories import open_config
from services.backup.requests import Requester, answer, refuse, refusing, take, to_agent
from services.domain.backups import BackupEvent

RESTORE = "restore"


def _restore_failed(backup_id: UUID, error: StrataError) -> Event:
    return RestoreStepFailed(backup_id=backup_id, error=error.info())


async def begin_restore(command: BeginRestore, envelope: Envelope, uow: UnitOfWork, deps: BackupDeps) -> None:
    """BackedUp -> Restoring (again Restoring: the same answer); refused for a backup that failed its verify."""

    async def body() -> None:
        requester = Requester.of(envelope)
        backup = await repo.get_backup(uow.connection, command.backup_id, lock=True)
        if backup.verify_bad:
            raise FailedPrecondition(
                f"backup {backup.backup_id} failed its verify ({len(backup.verify_bad)} bad chunk(s), first: "
                f"{backup.verify_bad[0]}): it cannot be restored",
                field="backup_id",
            )
        if backup.state is not BackupState.RESTORING:
            await move(uow, requester, backup, BackupEvent.RESTORE_REQUESTED)
        begun = RestoreBegun(backup_id=backup.backup_id, volume_id=backup.volume_id, size_bytes=backup.size_bytes)
        answer(uow, requester, begun)

    await refusing(uow, envelope, lambda error: _restore_failed(command.backup_id, error), body)


async def end_restore(command: EndRestore, envelope: Envelope, uow: UnitOfWork, deps: BackupDeps) -> None:
    """Restoring -> BackedUp (already BackedUp: the same answer)."""

    async def body() -> None:
        requester = Requester.of(envelope)
        backup = await repo.get_backup(uow.connection, command.backup_id, lock=True)
        if backup.state is BackupState.RESTORING:
            await move(uow, requester, backup, BackupEvent.RESTORE_ENDED)
        answer(uow, requester, RestoreEnded(backup_id=backup.backup_id))

    await refusing(uow, envelope, lambda error: _restore_failed(command.backup_id, error), body)


async def restore_to_volume(
    command: RestoreBackupToVolume, envelope: Envelope, uow: UnitOfWork, deps: BackupDeps
) -> None:
    """Have the agent of the volume's pool write the Restoring backup over the (held) volume and check it."""

    async def body() -> None:
        backup = await repo.get_backup(uow.connection, command.backup_id)
        if backup.state is not BackupState.RESTORING:
            raise FailedPrecondition(f"backup {backup.backup_id} is {backup.state}, not Restoring", field="backup_id")
        repository = await repo.get_repository(uow.connection, backup.repository_id)
        pool_id = command.pool_id or await repo.volume_pool(uow.connection, command.volume_id)
        sent = RestoreBackupOnPool(
            repository_id=repository.repository_id,
            plugin=repository.plugin,
            config=open_config(deps, repository),
            pool_id=pool_id,
            volume_id=command.volume_id,
            backup_id=backup.backup_id,
            **await repo.pool_route(uow.connection, pool_id),
        )
        await to_agent(uow, Requester.of(envelope), sent, kind=RESTORE, backup_id=backup.backup_id)

    await refusing(uow, envelope, lambda error: _restore_failed(command.backup_id, error), body)


async def on_backup_restored(
    event: BackupRestoredOnPool, envelope: Envelope, uow: UnitOfWork, deps: BackupDeps
) -> None:
    """Answer the requesters: the volume holds the backup's data, checked."""
    restored = BackupRestoredToVolume(
        backup_id=event.backup_id,
        volume_id=event.volume_id,
        bytes_written=event.bytes_written,
        chunks_checked=event.chunks_checked,
    )
    for requester in await take(uow, RESTORE, event.backup_id, envelope):
        answer(uow, requester, restored)


async def on_backup_restore_failed(
    event: BackupRestoreOnPoolFailed, envelope: Envelope, uow: UnitOfWork, deps: BackupDeps
) -> None:
    """The requesters learn why (the saga undoes the rest)."""
    failed = RestoreStepFailed(backup_id=event.backup_id, error=event.error)
    for requester in await take(uow, RESTORE, event.backup_id, envelope):
        refuse(uow, requester, failed, event.error)

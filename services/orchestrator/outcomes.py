"""When a saga ends, announce the operation's outcome in its own terms (`vm.reverted`, `vm.revert.failed`,
`vm.snapshot.created`, `vm.snapshot.create.failed`).

The saga engine says `saga.ended` for every saga; users and the CLI wait for the domain's event instead.
"""

from collections.abc import Callable

from bus.ports import UnitOfWork
from sagas.definitions.backup_create import SAGA_NAME as CREATE_BACKUP
from sagas.definitions.backup_restore import SAGA_NAME as RESTORE_BACKUP
from sagas.definitions.coalesce_chain import SAGA_NAME as COALESCE_CHAIN
from sagas.definitions.migrate_volume import SAGA_NAME as MIGRATE_VOLUME
from sagas.definitions.revert_vm import SAGA_NAME as REVERT_VM
from sagas.definitions.snapshot_vm import SAGA_NAME as SNAPSHOT_VM
from sagas.ports import SagaStore
from sagas.records import SagaInstance, SagaStatus
from schemas import Envelope, ErrorInfo, Event, registry
from schemas.backup import BackupCreateFailed, CreateBackup
from schemas.backup_restores import BackupRestoreFailed, RestoreBackup
from schemas.chain import ChainCoalesceFailed, CoalesceChain
from schemas.migration import MigrateVolume, VolumeMigrateFailed
from schemas.sagas import SagaEnded
from schemas.snapshot import CreateVmSnapshot, RevertVmToSnapshot, VmRevertFailed, VmSnapshotCreateFailed

PRODUCER = "orchestrator"


def _result(instance: SagaInstance) -> Event | None:
    """The saga's own result when it completed."""
    if instance.status is SagaStatus.COMPLETED and instance.result is not None:
        result = instance.result.decode(registry)
        assert isinstance(result, Event)  # every saga here returns its domain's event
        return result
    return None


def _why(instance: SagaInstance, undone: str) -> ErrorInfo:
    """Why a saga did not complete: undone (COMPENSATED) or left for an operator (FAILED, STUCK)."""
    compensated = instance.status is SagaStatus.COMPENSATED
    reason = instance.error or instance.status.value
    return ErrorInfo(
        code="ABORTED" if compensated else "FAILED_PRECONDITION",
        error_class=f"Saga{instance.status.value.title()}",
        message=(
            f"{undone} ({reason})"
            if compensated
            else f"saga {instance.saga_id} ended {instance.status.value}: {reason}; see `strata saga show`"
        ),
    )


def revert_vm_outcome(instance: SagaInstance) -> Event:
    """`vm.reverted` (the saga's result) or `vm.revert.failed` with the saga's reason."""
    result = _result(instance)
    if result is not None:
        return result
    command = instance.input.decode(registry)
    assert isinstance(command, RevertVmToSnapshot)
    return VmRevertFailed(
        vm_id=command.vm_id,
        vm_snapshot_id=command.vm_snapshot_id,
        error=_why(instance, "the revert was undone: the volumes and the power state are as before"),
    )


def snapshot_vm_outcome(instance: SagaInstance) -> Event:
    """`vm.snapshot.created` (the saga's result) or `vm.snapshot.create.failed` with the saga's reason."""
    result = _result(instance)
    if result is not None:
        return result
    command = instance.input.decode(registry)
    assert isinstance(command, CreateVmSnapshot)
    return VmSnapshotCreateFailed(
        vm_snapshot_id=command.vm_snapshot_id,
        vm_id=command.vm_id,
        error=_why(instance, "the VM snapshot was undone: no snapshot of it is left, the VM is as before"),
    )


def coalesce_chain_outcome(instance: SagaInstance) -> Event:
    """`snapshot.chain.coalesced` (the saga's result) or `snapshot.chain.coalesce.failed` with the saga's reason."""
    result = _result(instance)
    if result is not None:
        return result
    command = instance.input.decode(registry)
    assert isinstance(command, CoalesceChain)
    return ChainCoalesceFailed(
        volume_id=command.volume_id, error=_why(instance, "nothing was merged: the chain is as it was")
    )


def create_backup_outcome(instance: SagaInstance) -> Event:
    """`backup.created` (the saga's result) or `backup.create.failed` with the saga's reason."""
    result = _result(instance)
    if result is not None:
        return result
    command = instance.input.decode(registry)
    assert isinstance(command, CreateBackup)
    return BackupCreateFailed(
        backup_id=command.backup_id,
        volume_id=command.volume_id,
        error=_why(instance, "the backup failed: its snapshot is usable again, the backup (if recorded) is in Error"),
    )


def restore_backup_outcome(instance: SagaInstance) -> Event:
    """`backup.restored` (the saga's result) or `backup.restore.failed` with the saga's reason."""
    result = _result(instance)
    if result is not None:
        return result
    command = instance.input.decode(registry)
    assert isinstance(command, RestoreBackup)
    return BackupRestoreFailed(
        restore_id=command.restore_id,
        backup_id=command.backup_id,
        error=_why(instance, "the restore was undone: no new volume is left, a volume restored in place is as before"),
    )


def migrate_volume_outcome(instance: SagaInstance) -> Event:
    """`volume.migrated` (the saga's result) or `volume.migrate.failed` with the saga's reason."""
    result = _result(instance)
    if result is not None:
        return result
    command = instance.input.decode(registry)
    assert isinstance(command, MigrateVolume)
    return VolumeMigrateFailed(
        volume_id=command.volume_id,
        pool_id=command.pool_id,
        error=_why(instance, "the migration was undone: the volume is Ready on its source pool, untouched"),
    )


OUTCOMES: dict[str, Callable[[SagaInstance], Event]] = {
    COALESCE_CHAIN: coalesce_chain_outcome,
    MIGRATE_VOLUME: migrate_volume_outcome,
    REVERT_VM: revert_vm_outcome,
    SNAPSHOT_VM: snapshot_vm_outcome,
    CREATE_BACKUP: create_backup_outcome,
    RESTORE_BACKUP: restore_backup_outcome,
}


async def announce_outcome(event: SagaEnded, envelope: Envelope, uow: UnitOfWork, store: SagaStore) -> None:
    """`saga.ended`: publish the outcome of a saga this orchestrator knows how to describe, in its domain's terms."""
    describe = OUTCOMES.get(event.name)
    if describe is None:
        return
    async with store.session(uow) as session:
        instance = await session.get_instance(event.saga_id)
    if instance is None:
        return
    uow.emit(
        Envelope.wrap(
            describe(instance), cause=envelope, correlation_id=instance.correlation_id, producer=PRODUCER
        ).model_copy(update={"saga_id": instance.saga_id, "step": None})
    )

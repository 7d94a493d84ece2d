"""The backup life cycle and the choice between full and incremental (`backup.full.every`)."""

import uuid

import pytest

from schemas.backup import BackupKind, BackupState
from schemas.backup_restores import RestoreBackup
from schemas.errors import FailedPrecondition
from services.domain.backups import BACKUP_STATES, BackupEvent, PriorBackup, plan_backup

pytestmark = pytest.mark.unit


def _prior(series: int) -> PriorBackup:
    return PriorBackup(backup_id=uuid.uuid4(), snapshot_id=uuid.uuid4(), series=series)


def test_the_first_backup_is_full_then_incrementals_until_a_full_every_n() -> None:
    plan = plan_backup(None, full_every=10)
    assert (plan.kind, plan.parent, plan.series) == (BackupKind.FULL, None, 0)
    kinds = []
    latest: PriorBackup | None = None
    for _ in range(21):
        plan = plan_backup(latest, full_every=10)
        kinds.append(plan.kind)
        if plan.kind is BackupKind.INCREMENTAL:
            assert plan.parent == latest
        latest = _prior(plan.series)
    assert [index for index, kind in enumerate(kinds) if kind is BackupKind.FULL] == [0, 10, 20]


def test_full_every_one_takes_only_fulls_and_zero_is_refused() -> None:
    assert plan_backup(_prior(0), full_every=1).kind is BackupKind.FULL
    with pytest.raises(ValueError, match=r"backup\.full\.every"):
        plan_backup(None, full_every=0)


def test_a_backup_moves_as_cloudstack_names_it_and_illegal_moves_are_refused() -> None:
    state = BACKUP_STATES.next_state("b", BackupState.ALLOCATED, BackupEvent.BACKUP_REQUESTED)
    assert state is BackupState.BACKING_UP
    assert BACKUP_STATES.next_state("b", state, BackupEvent.OPERATION_FAILED) is BackupState.ERROR
    backed_up = BACKUP_STATES.next_state("b", state, BackupEvent.OPERATION_SUCCEEDED)
    restoring = BACKUP_STATES.next_state("b", backed_up, BackupEvent.RESTORE_REQUESTED)
    assert BACKUP_STATES.next_state("b", restoring, BackupEvent.RESTORE_ENDED) is BackupState.BACKED_UP
    with pytest.raises(FailedPrecondition, match="backup b is Restoring"):
        BACKUP_STATES.next_state("b", restoring, BackupEvent.REMOVE_REQUESTED)
    with pytest.raises(FailedPrecondition, match="BackingUp"):
        BACKUP_STATES.next_state("b", BackupState.BACKING_UP, BackupEvent.RESTORE_REQUESTED)
    assert BACKUP_STATES.is_final(BackupState.REMOVED)


def test_a_restore_to_a_new_volume_needs_its_name_and_zone_and_a_vm_needs_its_host() -> None:
    restore_id, backup_id, volume_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    with pytest.raises(ValueError, match="needs its name and zone_id"):
        RestoreBackup(restore_id=restore_id, backup_id=backup_id, volume_id=volume_id)
    with pytest.raises(ValueError, match="the VM's host"):
        RestoreBackup(restore_id=restore_id, backup_id=backup_id, volume_id=volume_id, in_place=True, vm_id=volume_id)
    assert RestoreBackup(restore_id=restore_id, backup_id=backup_id, volume_id=volume_id, in_place=True).in_place

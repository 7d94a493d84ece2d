"""The life cycle of a backup (CloudStack's Backup.Status) and the choice between a full and an incremental."""

from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

from schemas.backup import BackupKind, BackupState
from services.domain.states import StateMachine

FULL_EVERY_SETTING = "backup.full.every"
DEFAULT_FULL_EVERY = 10
"""A full backup every 10 backups of a volume in a repository, as CloudStack's NAS provider counts them."""


class BackupEvent(StrEnum):
    """What happens to a backup: a request or the outcome of the work it started."""

    BACKUP_REQUESTED = "BackupRequested"
    OPERATION_SUCCEEDED = "OperationSucceeded"
    OPERATION_FAILED = "OperationFailed"
    RESTORE_REQUESTED = "RestoreRequested"
    RESTORE_ENDED = "RestoreEnded"
    REMOVE_REQUESTED = "RemoveRequested"


_ = BackupEvent
BACKUP_STATES: StateMachine[BackupState, BackupEvent] = StateMachine(
    "backup",
    {
        BackupState.ALLOCATED: {_.BACKUP_REQUESTED: BackupState.BACKING_UP},
        BackupState.BACKING_UP: {
            _.OPERATION_SUCCEEDED: BackupState.BACKED_UP,
            _.OPERATION_FAILED: BackupState.ERROR,
        },
        BackupState.BACKED_UP: {
            _.RESTORE_REQUESTED: BackupState.RESTORING,
            _.REMOVE_REQUESTED: BackupState.REMOVED,
        },
        BackupState.RESTORING: {_.RESTORE_ENDED: BackupState.BACKED_UP},
        BackupState.ERROR: {_.REMOVE_REQUESTED: BackupState.REMOVED},
        BackupState.REMOVED: {},
    },
)


@dataclass(frozen=True)
class PriorBackup:
    """A BackedUp backup of the same volume in the same repository."""

    backup_id: UUID
    snapshot_id: UUID
    series: int
    """0 for a full backup, n for the n-th incremental after it."""


@dataclass(frozen=True)
class BackupPlan:
    """Full or incremental, against which parent, and the backup's place in its series."""

    kind: BackupKind
    parent: PriorBackup | None
    series: int


def plan_backup(latest: PriorBackup | None, *, full_every: int) -> BackupPlan:
    """A full backup first and then every `full_every` backups; an incremental on the latest backup otherwise."""
    if full_every < 1:
        raise ValueError(f"{FULL_EVERY_SETTING} must be 1 or more")
    if latest is None or latest.series + 1 >= full_every:
        return BackupPlan(BackupKind.FULL, None, 0)
    return BackupPlan(BackupKind.INCREMENTAL, latest, latest.series + 1)

"""The bridge's one mapping table: which CloudStack event becomes which strata command. Read this first.

One row per CloudStack event type. A request (Scheduled, Started, Created) of a row with a `command` becomes that
strata command, CloudStack's uuids being strata's ids; a row without one is recorded only (its events do not carry
what strata would need, or strata has no such operation). A row's `outcomes` say which strata events end the
operation, and how: a success, a failure, or not yet (`None`: a pool passing through PrepareForMaintenance). The
entity field (`volume_id`, `pool_id`, ...) names which of the event's fields is the operation's entity.

CloudStack's events name only uuids: a volume's size lives in its disk offering and is not on the bus, so a
VOLUME.CREATE takes `STRATA_BRIDGE_VOLUME_SIZE_BYTES` unless the event carries a `DiskOffering` strata does not
know either; the zone is the event's `DataCenter` or `STRATA_BRIDGE_ZONE_ID`. What a few requests carry in their
description (a resize's size, a template's source volume, a copy's destination zone) is read by their builders
(`builders.py`); a request without it is recorded, and a row without a command says why in `why_recorded`.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from schemas import ErrorInfo, Event
from schemas.backup import BackupDeleted, BackupDeleteFailed, DeleteBackup
from schemas.backup_restores import BackupRestored, BackupRestoreFailed
from schemas.image import (
    DeleteImage,
    ImageCopyAccepted,
    ImageCopyFailed,
    ImageDeleted,
    ImageDeleteFailed,
    ImageDownloaded,
    ImageDownloadFailed,
    ImageRegisterFailed,
)
from schemas.migration import VolumeMigrated, VolumeMigrateFailed
from schemas.snapshot import (
    DeleteSnapshot,
    DeleteSnapshotPolicy,
    RevertSnapshot,
    SnapshotCreated,
    SnapshotCreateFailed,
    SnapshotDeleted,
    SnapshotDeleteFailed,
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
    CancelPoolMaintenance,
    DeletePool,
    DeleteVolume,
    DisablePool,
    EnablePool,
    MaintainPool,
    PoolCommand,
    PoolOperationFailed,
    PoolState,
    PoolStateChanged,
    VolumeCreated,
    VolumeCreateFailed,
    VolumeDeleted,
    VolumeDeleteFailed,
    VolumeResized,
    VolumeResizeFailed,
)
from services.bridge import builders as build
from services.bridge.builders import Builder

TEMPLATE = "VirtualMachineTemplate"
Settles = Callable[[Any], bool | None]  # Any: the row's outcome event; True success, False failure, None not yet


@dataclass(frozen=True)
class Row:
    """One CloudStack event type and what strata makes of it.

    Attributes:
        event: CloudStack's event type (`VOLUME.CREATE`).
        entity: The first-class entity that identifies the operation (`Volume`): its uuid is strata's id.
        doing: CloudStack's words for the answer ("creating volume").
        targets: Further entities that tell one operation from another (a migration's destination pool).
        command: Builds the strata command of a request; None: recorded only.
        entity_field: The field of the outcome events that holds the entity's id.
        outcomes: Outcome event types and how each settles the operation.
        asks: The command's builder asks strata's services (a duplicate is then looked for before it asks).
        why_recorded: For a row without a command, why (what its events lack, or what strata lacks).
    """

    event: str
    entity: str
    doing: str
    targets: tuple[str, ...] = ()
    command: Builder | None = None
    entity_field: str = ""
    outcomes: Mapping[type[Event], Settles] = field(default_factory=dict)
    asks: bool = False
    why_recorded: str = ""


def _success(_: object) -> bool:
    return True


def _failure(_: object) -> bool:
    return False


def _copy_accepted(accepted: ImageCopyAccepted) -> bool | None:
    """A copy to a zone that holds the template in every store is done at once; otherwise a store's download
    settles it."""
    return True if not accepted.store_ids else None


def _pool_reaches(*done: PoolState, failed: tuple[PoolState, ...] = ()) -> Settles:
    def settles(changed: PoolStateChanged) -> bool | None:
        if changed.new_state in done:
            return True
        return False if changed.new_state in failed else None

    return settles


def _pool_row(
    event: str, doing: str, command: type[PoolCommand], *done: PoolState, failed: tuple[PoolState, ...] = ()
) -> Row:
    outcomes: dict[type[Event], Settles] = {
        PoolStateChanged: _pool_reaches(*done, failed=failed),
        PoolOperationFailed: _failure,
    }
    return Row(
        event,
        "StoragePool",
        doing,
        command=build.one_id(command, "pool_id", "StoragePool"),
        entity_field="pool_id",
        outcomes=outcomes,
    )


def _recorded(event: str, entity: str, doing: str, why: str) -> Row:
    """A row whose requests strata does not carry out: recorded, and their reports reconciled where strata can."""
    return Row(event, entity, doing, why_recorded=why)


ROWS: tuple[Row, ...] = (
    Row(
        "VOLUME.CREATE",
        "Volume",
        "creating volume",
        command=build.create_volume,
        entity_field="volume_id",
        outcomes={VolumeCreated: _success, VolumeCreateFailed: _failure},
        asks=True,
    ),
    Row(
        "VOLUME.DELETE",
        "Volume",
        "deleting volume",
        command=build.one_id(DeleteVolume, "volume_id", "Volume"),
        entity_field="volume_id",
        outcomes={VolumeDeleted: _success, VolumeDeleteFailed: _failure},
    ),
    Row(
        "VOLUME.RESIZE",
        "Volume",
        "resizing volume",
        command=build.resize_volume,  # the size from the description; none (a new offering): recorded
        entity_field="volume_id",
        outcomes={VolumeResized: _success, VolumeResizeFailed: _failure},
    ),
    Row(
        "VOLUME.MIGRATE",
        "Volume",
        "migrating volume",
        targets=("StoragePool",),
        command=build.migrate_volume,
        entity_field="volume_id",
        outcomes={VolumeMigrated: _success, VolumeMigrateFailed: _failure},
    ),
    Row(
        "SNAPSHOT.CREATE",
        "Snapshot",
        "taking snapshot",
        command=build.create_snapshot,
        entity_field="snapshot_id",
        outcomes={SnapshotCreated: _success, SnapshotCreateFailed: _failure},
    ),
    Row(
        "SNAPSHOT.DELETE",
        "Snapshot",
        "deleting snapshot",
        command=build.one_id(DeleteSnapshot, "snapshot_id", "Snapshot"),
        entity_field="snapshot_id",
        outcomes={SnapshotDeleted: _success, SnapshotDeleteFailed: _failure},
    ),
    Row(
        "SNAPSHOT.REVERT",
        "Snapshot",
        "reverting snapshot",
        command=build.one_id(RevertSnapshot, "snapshot_id", "Snapshot"),
        entity_field="snapshot_id",
        outcomes={SnapshotReverted: _success, SnapshotRevertFailed: _failure},
    ),
    Row(
        "VMSNAPSHOT.CREATE",
        "VMSnapshot",
        "creating vm snapshot",
        command=build.create_vm_snapshot,
        entity_field="vm_snapshot_id",
        outcomes={VmSnapshotCreated: _success, VmSnapshotCreateFailed: _failure},
        asks=True,
    ),
    _recorded(
        "VMSNAPSHOT.DELETE",
        "VMSnapshot",
        "deleting vm snapshot",
        "strata has no VM snapshot deletion (its snapshot service deletes volume snapshots one at a time)",
    ),
    Row(
        "VMSNAPSHOT.REVERTTO",
        "VMSnapshot",
        "reverting to vm snapshot",
        command=build.revert_vm,
        entity_field="vm_snapshot_id",
        outcomes={VmReverted: _success, VmRevertFailed: _failure},
        asks=True,
    ),
    _recorded(
        "SNAPSHOTPOLICY.CREATE",
        "SnapshotPolicy",
        "creating snapshot policy",
        "its events carry neither intervaltype, schedule, timezone nor maxsnaps (createSnapshotPolicy is a "
        "synchronous call: CloudStack publishes its Completed only)",
    ),
    _recorded(
        "SNAPSHOTPOLICY.UPDATE",
        "SnapshotPolicy",
        "updating snapshot policy",
        "its events carry none of the changed fields, and strata has no policy update (delete and create)",
    ),
    Row(
        "SNAPSHOTPOLICY.DELETE",
        "SnapshotPolicy",
        "deleting snapshot policy",
        command=build.one_id(DeleteSnapshotPolicy, "policy_id", "SnapshotPolicy"),
        entity_field="policy_id",
        outcomes={SnapshotPolicyDeleted: _success, SnapshotPolicyDeleteFailed: _failure},
    ),
    _pool_row(
        "MAINT.PREPARE.PS",
        "preparing storage pool for maintenance",
        MaintainPool,
        PoolState.MAINTENANCE,
        failed=(PoolState.ERROR_IN_MAINTENANCE,),
    ),
    _pool_row("MAINT.CANCEL.PS", "cancelling storage pool maintenance", CancelPoolMaintenance, PoolState.UP),
    _pool_row("ENABLE.PS", "enabling storage pool", EnablePool, PoolState.UP),
    _pool_row("DISABLE.PS", "disabling storage pool", DisablePool, PoolState.DISABLED),
    _pool_row("DELETE.PS", "deleting storage pool", DeletePool, PoolState.REMOVED),
    Row(
        "TEMPLATE.CREATE",
        TEMPLATE,
        "creating template",
        command=build.create_template,  # from a volume or snapshot; a URL (registerTemplate) is not on the bus
        entity_field="image_id",
        outcomes={ImageDownloaded: _success, ImageDownloadFailed: _failure, ImageRegisterFailed: _failure},
        asks=True,
    ),
    Row(
        "TEMPLATE.DELETE",
        TEMPLATE,
        "deleting template",
        command=build.one_id(DeleteImage, "image_id", TEMPLATE),
        entity_field="image_id",
        outcomes={ImageDeleted: _success, ImageDeleteFailed: _failure},
    ),
    Row(
        "TEMPLATE.COPY",
        TEMPLATE,
        "copying template",
        command=build.copy_template,  # to the one zone its description names
        entity_field="image_id",
        outcomes={
            ImageCopyAccepted: _copy_accepted,
            ImageDownloaded: _success,
            ImageDownloadFailed: _failure,
            ImageCopyFailed: _failure,
        },
    ),
    _recorded(
        "BACKUP.CREATE",
        "Backup",
        "creating backup",
        "its request names the VM, neither the backup CloudStack will make nor the repository (the VM's backup "
        "offering is not on the bus), and strata backs up volumes, not VMs",
    ),
    Row(
        "BACKUP.DELETE",
        "Backup",
        "deleting backup",
        command=build.one_id(DeleteBackup, "backup_id", "Backup"),
        entity_field="backup_id",
        outcomes={BackupDeleted: _success, BackupDeleteFailed: _failure},
    ),
    Row(
        "BACKUP.RESTORE",
        "Backup",
        "restoring backup",
        targets=("Volume",),
        command=build.restore_backup,  # in place over the Volume the event names; none named: recorded
        entity_field="backup_id",
        outcomes={BackupRestored: _success, BackupRestoreFailed: _failure},
        asks=True,
    ),
    # ISOs and template downloads: strata's own image service reports downloads; CloudStack's are recorded.
    *(
        _recorded(event, TEMPLATE, doing, why)
        for event, doing, why in (
            ("TEMPLATE.DOWNLOAD.START", "downloading template", "a report of CloudStack's own download"),
            ("TEMPLATE.DOWNLOAD.SUCCESS", "downloading template", "a report of CloudStack's own download"),
            ("TEMPLATE.DOWNLOAD.FAILED", "downloading template", "a report of CloudStack's own download"),
            ("ISO.CREATE", "creating iso", "an ISO is registered from a URL, and the URL is not on the bus"),
            ("ISO.DELETE", "deleting iso", "strata's ISOs are registered by strata, not bridged"),
            ("ISO.COPY", "copying iso", "strata's ISOs are registered by strata, not bridged"),
        )
    ),
)

MAPPING: dict[str, Row] = {row.event: row for row in ROWS}
"""CloudStack event type -> its row."""

STATE_REQUESTS: dict[tuple[str, str], str] = {
    ("Volume", "DestroyRequested"): "VOLUME.DELETE",
    ("Snapshot", "DestroyRequested"): "SNAPSHOT.DELETE",
}
"""A resource state machine's event that asks for an action (resource, state event) -> that action's row: CloudStack
publishes it before and after the transition, and it is the same operation as the action's Scheduled and Started.
Other transitions are recorded only (they do not carry what a command needs: a migration's destination)."""


def outcome_events() -> tuple[type[Event], ...]:
    """Every strata event type that settles a bridged operation (what the bridge's strata queue binds)."""
    return tuple(sorted({model for row in ROWS for model in row.outcomes}, key=lambda model: model.message_type))


def settle(row: Row, event: Event) -> tuple[UUID, bool, str | None] | None:
    """(entity id, succeeded, reason) if `event` settles an operation of `row`; None if it does not (yet)."""
    settles = row.outcomes.get(type(event))
    if settles is None:
        return None
    verdict = settles(event)
    if verdict is None:
        return None
    entity = getattr(event, row.entity_field, None)
    if not isinstance(entity, UUID):
        return None
    error = getattr(event, "error", None)
    reason = error.message if isinstance(error, ErrorInfo) else None
    if not verdict and reason is None and isinstance(event, PoolStateChanged):
        reason = event.reason or f"the pool ended {event.new_state.value}"
    return entity, verdict, reason

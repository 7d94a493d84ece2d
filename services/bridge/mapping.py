"""The bridge's one mapping table: which CloudStack event becomes which strata command. Read this first.

One row per CloudStack event type. A request (Scheduled, Started, Created) of a row with a `command` becomes that
strata command, CloudStack's uuids being strata's ids; a row without one is recorded only (its events do not carry
what strata would need, or strata has no such operation). A row's `outcomes` say which strata events end the
operation, and how: a success, a failure, or not yet (`None`: a pool passing through PrepareForMaintenance). The
entity field (`volume_id`, `pool_id`, ...) names which of the event's fields is the operation's entity.

CloudStack's events name only uuids: a volume's size lives in its disk offering and is not on the bus, so a
VOLUME.CREATE takes `STRATA_BRIDGE_VOLUME_SIZE_BYTES` unless the event carries a `DiskOffering` strata does not
know either; the zone is the event's `DataCenter` or `STRATA_BRIDGE_ZONE_ID`.
"""

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

from schemas import Command, ErrorInfo, Event, InvalidArgument
from schemas.cloudstack import ActionEvent
from schemas.hosts import HostInfo
from schemas.migration import MigrateVolume, VolumeMigrated, VolumeMigrateFailed
from schemas.snapshot import (
    CreateSnapshot,
    CreateVmSnapshot,
    DeleteSnapshot,
    DeleteSnapshotPolicy,
    RevertSnapshot,
    RevertVmToSnapshot,
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
    VolumeSnapshotPair,
)
from schemas.storage import (
    CancelPoolMaintenance,
    CreateVolume,
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
)
from schemas.storage_queries import PoolInfo, VolumeInfo


class Lookups(Protocol):
    """What a row may ask strata before it builds its command (queries over the bus)."""

    async def volumes_of_vm(self, vm_id: UUID) -> tuple[VolumeInfo, ...]:
        """The volumes strata knows of a VM."""

    async def hosts(self) -> tuple[HostInfo, ...]:
        """The registered hosts with their VMs."""

    async def vm_snapshot_pairs(self, vm_snapshot_id: UUID) -> tuple[VolumeSnapshotPair, ...]:
        """The volume and snapshot pairs of a VM snapshot."""

    async def pool(self, pool_id: UUID) -> PoolInfo | None:
        """A pool as strata holds it; None if strata never knew it."""


@dataclass(frozen=True)
class Defaults:
    """What CloudStack's events do not carry, from the bridge's settings."""

    volume_size_bytes: int
    zone_id: UUID | None


Builder = Callable[[ActionEvent, Lookups, Defaults], Awaitable[Command]]
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
    """

    event: str
    entity: str
    doing: str
    targets: tuple[str, ...] = ()
    command: Builder | None = None
    entity_field: str = ""
    outcomes: Mapping[type[Event], Settles] = field(default_factory=dict)
    asks: bool = False


def _required(event: ActionEvent, name: str) -> UUID:
    found = event.entity_id(name)
    if found is None:
        raise InvalidArgument(f"{event.event} names no {name}", field=name)
    return found


def _name(event: ActionEvent, entity: str) -> str:
    return f"cs-{entity.lower()}-{_required(event, entity).hex[:12]}"


def _success(_: object) -> bool:
    return True


def _failure(_: object) -> bool:
    return False


def _pool_reaches(*done: PoolState, failed: tuple[PoolState, ...] = ()) -> Settles:
    def settles(changed: PoolStateChanged) -> bool | None:
        if changed.new_state in done:
            return True
        return False if changed.new_state in failed else None

    return settles


def _pool_row(
    event: str, doing: str, command: type[PoolCommand], *done: PoolState, failed: tuple[PoolState, ...] = ()
) -> Row:
    async def build(request: ActionEvent, lookups: Lookups, defaults: Defaults) -> Command:
        return command(pool_id=_required(request, "StoragePool"))

    outcomes: dict[type[Event], Settles] = {
        PoolStateChanged: _pool_reaches(*done, failed=failed),
        PoolOperationFailed: _failure,
    }
    return Row(event, "StoragePool", doing, command=build, entity_field="pool_id", outcomes=outcomes)


async def _create_volume(request: ActionEvent, lookups: Lookups, defaults: Defaults) -> Command:
    zone = request.entity_id("DataCenter") or defaults.zone_id
    if zone is None:
        raise InvalidArgument(
            "VOLUME.CREATE names no DataCenter and STRATA_BRIDGE_ZONE_ID is not set", field="DataCenter"
        )
    pool_id = request.entity_id("StoragePool")
    # A local pool places the volume on its host: CloudStack names hosts by uuid, strata's agents by name.
    pool = await lookups.pool(pool_id) if pool_id is not None else None
    return CreateVolume(
        volume_id=_required(request, "Volume"),
        name=_name(request, "Volume"),
        size_bytes=defaults.volume_size_bytes,
        zone_id=zone,
        pool_id=pool_id,
        vm_id=request.entity_id("VirtualMachine"),
        host=pool.host if pool is not None else None,
        cluster_id=pool.cluster_id if pool is not None else None,
    )


async def _delete_volume(request: ActionEvent, lookups: Lookups, defaults: Defaults) -> Command:
    return DeleteVolume(volume_id=_required(request, "Volume"))


async def _migrate_volume(request: ActionEvent, lookups: Lookups, defaults: Defaults) -> Command:
    return MigrateVolume(volume_id=_required(request, "Volume"), pool_id=_required(request, "StoragePool"))


async def _create_snapshot(request: ActionEvent, lookups: Lookups, defaults: Defaults) -> Command:
    return CreateSnapshot(
        snapshot_id=_required(request, "Snapshot"),
        volume_id=_required(request, "Volume"),
        name=_name(request, "Snapshot"),
    )


async def _delete_snapshot(request: ActionEvent, lookups: Lookups, defaults: Defaults) -> Command:
    return DeleteSnapshot(snapshot_id=_required(request, "Snapshot"))


async def _revert_snapshot(request: ActionEvent, lookups: Lookups, defaults: Defaults) -> Command:
    return RevertSnapshot(snapshot_id=_required(request, "Snapshot"))


async def _create_vm_snapshot(request: ActionEvent, lookups: Lookups, defaults: Defaults) -> Command:
    vm_id = _required(request, "VirtualMachine")
    volumes = await lookups.volumes_of_vm(vm_id)
    if not volumes:
        raise InvalidArgument(f"strata knows no volume of VM {vm_id}", field="VirtualMachine")
    return CreateVmSnapshot(
        vm_snapshot_id=_required(request, "VMSnapshot"),
        vm_id=vm_id,
        name=_name(request, "VMSnapshot"),
        volume_ids=tuple(sorted(info.volume_id for info in volumes)),
    )


async def _revert_vm(request: ActionEvent, lookups: Lookups, defaults: Defaults) -> Command:
    vm_id, vm_snapshot_id = _required(request, "VirtualMachine"), _required(request, "VMSnapshot")
    host = next(
        (info.identity.host for info in await lookups.hosts() if any(vm.vm_id == vm_id for vm in info.vms)), None
    )
    if host is None:
        raise InvalidArgument(f"no registered host runs VM {vm_id}", field="VirtualMachine")
    pairs = await lookups.vm_snapshot_pairs(vm_snapshot_id)
    if not pairs:
        raise InvalidArgument(f"strata knows no snapshot of VM snapshot {vm_snapshot_id}", field="VMSnapshot")
    return RevertVmToSnapshot(vm_id=vm_id, vm_snapshot_id=vm_snapshot_id, host=host, snapshots=pairs)


async def _delete_policy(request: ActionEvent, lookups: Lookups, defaults: Defaults) -> Command:
    return DeleteSnapshotPolicy(policy_id=_required(request, "SnapshotPolicy"))


def _recorded(event: str, entity: str, doing: str) -> Row:
    """A row whose requests strata does not carry out: recorded, and their reports reconciled where strata can."""
    return Row(event, entity, doing)


ROWS: tuple[Row, ...] = (
    Row(
        "VOLUME.CREATE",
        "Volume",
        "creating volume",
        command=_create_volume,
        entity_field="volume_id",
        outcomes={VolumeCreated: _success, VolumeCreateFailed: _failure},
        asks=True,
    ),
    Row(
        "VOLUME.DELETE",
        "Volume",
        "deleting volume",
        command=_delete_volume,
        entity_field="volume_id",
        outcomes={VolumeDeleted: _success, VolumeDeleteFailed: _failure},
    ),
    _recorded("VOLUME.RESIZE", "Volume", "resizing volume"),  # the new size is in the API call, not the event
    Row(
        "VOLUME.MIGRATE",
        "Volume",
        "migrating volume",
        targets=("StoragePool",),
        command=_migrate_volume,
        entity_field="volume_id",
        outcomes={VolumeMigrated: _success, VolumeMigrateFailed: _failure},
    ),
    Row(
        "SNAPSHOT.CREATE",
        "Snapshot",
        "taking snapshot",
        command=_create_snapshot,
        entity_field="snapshot_id",
        outcomes={SnapshotCreated: _success, SnapshotCreateFailed: _failure},
    ),
    Row(
        "SNAPSHOT.DELETE",
        "Snapshot",
        "deleting snapshot",
        command=_delete_snapshot,
        entity_field="snapshot_id",
        outcomes={SnapshotDeleted: _success, SnapshotDeleteFailed: _failure},
    ),
    Row(
        "SNAPSHOT.REVERT",
        "Snapshot",
        "reverting snapshot",
        command=_revert_snapshot,
        entity_field="snapshot_id",
        outcomes={SnapshotReverted: _success, SnapshotRevertFailed: _failure},
    ),
    Row(
        "VMSNAPSHOT.CREATE",
        "VMSnapshot",
        "creating vm snapshot",
        command=_create_vm_snapshot,
        entity_field="vm_snapshot_id",
        outcomes={VmSnapshotCreated: _success, VmSnapshotCreateFailed: _failure},
        asks=True,
    ),
    _recorded("VMSNAPSHOT.DELETE", "VMSnapshot", "deleting vm snapshot"),  # strata has no VM snapshot deletion
    Row(
        "VMSNAPSHOT.REVERTTO",
        "VMSnapshot",
        "reverting to vm snapshot",
        command=_revert_vm,
        entity_field="vm_snapshot_id",
        outcomes={VmReverted: _success, VmRevertFailed: _failure},
        asks=True,
    ),
    _recorded("SNAPSHOTPOLICY.CREATE", "SnapshotPolicy", "creating snapshot policy"),  # schedule not on the bus
    _recorded("SNAPSHOTPOLICY.UPDATE", "SnapshotPolicy", "updating snapshot policy"),
    Row(
        "SNAPSHOTPOLICY.DELETE",
        "SnapshotPolicy",
        "deleting snapshot policy",
        command=_delete_policy,
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
    # Templates, ISOs and backups: their events carry neither the URL, the repository nor the zone's stores.
    *(
        _recorded(event, entity, doing)
        for event, entity, doing in (
            ("TEMPLATE.CREATE", "VirtualMachineTemplate", "creating template"),
            ("TEMPLATE.DELETE", "VirtualMachineTemplate", "deleting template"),
            ("TEMPLATE.COPY", "VirtualMachineTemplate", "copying template"),
            ("TEMPLATE.DOWNLOAD.START", "VirtualMachineTemplate", "downloading template"),
            ("TEMPLATE.DOWNLOAD.SUCCESS", "VirtualMachineTemplate", "downloading template"),
            ("TEMPLATE.DOWNLOAD.FAILED", "VirtualMachineTemplate", "downloading template"),
            ("ISO.CREATE", "VirtualMachineTemplate", "creating iso"),
            ("ISO.DELETE", "VirtualMachineTemplate", "deleting iso"),
            ("ISO.COPY", "VirtualMachineTemplate", "copying iso"),
            ("BACKUP.CREATE", "Backup", "creating backup"),
            ("BACKUP.RESTORE", "Backup", "restoring backup"),
            ("BACKUP.DELETE", "Backup", "deleting backup"),
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

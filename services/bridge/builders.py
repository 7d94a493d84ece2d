"""How a CloudStack request becomes a strata command: one builder per mapping row (`mapping.py` says which).

CloudStack's events name only uuids (the first-class entities), plus a `description`. Where CloudStack writes what a
command needs into that description, a builder reads it there, and only there:
- VOLUME.RESIZE: `ResizeVolumeCmd` writes "Volume Id: <uuid> to size <N> GB" (its Scheduled, and the Started's
  details) when the size is given; a resize to another disk offering carries no size.
- TEMPLATE.CREATE: `CreateTemplateCmd`'s Started says "Template Id: <uuid> from volume Id: <uuid>" (or "from snapshot
  Id: <uuid>"); its Created and Scheduled carry only the name. A template registered from a URL (`registerTemplate`,
  a synchronous call: a Completed only) never has its URL on the bus.
- TEMPLATE.COPY: `CopyTemplateCmd` says "Copying Template: <uuid> [from zone: <uuid>] to zones: <uuid>, ...".
A request that does not carry what its command needs raises `NotCarried`: it is recorded, and a later request of the
same operation that does carry it (the Started after a Scheduled) becomes the command.
"""

import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from schemas import Command, InvalidArgument
from schemas.backup_restores import RestoreBackup
from schemas.cloudstack import ActionEvent
from schemas.hosts import HostInfo
from schemas.image import CopyImage, CreateImageFromVolume
from schemas.migration import MigrateVolume
from schemas.snapshot import (
    CreateSnapshot,
    CreateVmSnapshot,
    RevertVmToSnapshot,
    VolumeSnapshotPair,
)
from schemas.storage import CreateVolume, ResizeVolume
from schemas.storage_queries import PoolInfo, VolumeInfo
from services.bridge.reconcile import StateProbe, resize_bytes

_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_TEMPLATE_SOURCE = re.compile(rf"\bfrom (volume|snapshot) Id: ({_UUID})")
_COPY_ZONES = re.compile(rf"\bto zones?: ((?:{_UUID})(?:, ?{_UUID})*)")
_RESTORE_IDS = uuid.UUID("0b9c8f0e-3f5e-4d59-9a53-6f4f8e2d1c77")  # uuid5 namespace of restores asked by CloudStack


class NotCarried(Exception):
    """The request does not carry what its command needs: recorded, not sent (the reason says what is missing)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Lookups(StateProbe, Protocol):
    """What a row may ask strata before it builds its command (queries over the bus), besides an entity's state."""

    async def volumes_of_vm(self, vm_id: UUID) -> tuple[VolumeInfo, ...]:
        """The volumes strata knows of a VM."""

    async def hosts(self) -> tuple[HostInfo, ...]:
        """The registered hosts with their VMs."""

    async def vm_snapshot_pairs(self, vm_snapshot_id: UUID) -> tuple[VolumeSnapshotPair, ...]:
        """The volume and snapshot pairs of a VM snapshot."""


@dataclass(frozen=True)
class Defaults:
    """What CloudStack's events do not carry, from the bridge's settings."""

    volume_size_bytes: int
    zone_id: UUID | None


Builder = Callable[[ActionEvent, Lookups, Defaults], Awaitable[Command]]


def required(event: ActionEvent, name: str) -> UUID:
    """The uuid of entity `name`; InvalidArgument naming it if the event has none."""
    found = event.entity_id(name)
    if found is None:
        raise InvalidArgument(f"{event.event} names no {name}", field=name)
    return found


def one_id(command: Callable[..., Command], field: str, entity: str) -> Builder:
    """A builder of a command that takes one id: the uuid of the event's `entity`, as `field`."""

    async def build(request: ActionEvent, lookups: Lookups, defaults: Defaults) -> Command:
        return command(**{field: required(request, entity)})

    return build


def _route(pool: PoolInfo | None) -> tuple[str | None, str | None]:
    """The agent route of a pool: (its host, its cluster), as commands name them."""
    return (pool.host, pool.cluster_id) if pool is not None else (None, None)


def name_of(event: ActionEvent, entity: str) -> str:
    """A strata name for a CloudStack entity (CloudStack's names are not on the bus)."""
    return f"cs-{entity.lower()}-{required(event, entity).hex[:12]}"


async def create_volume(request: ActionEvent, lookups: Lookups, defaults: Defaults) -> Command:
    zone = request.entity_id("DataCenter") or defaults.zone_id
    if zone is None:
        raise InvalidArgument(
            "VOLUME.CREATE names no DataCenter and STRATA_BRIDGE_ZONE_ID is not set", field="DataCenter"
        )
    pool_id = request.entity_id("StoragePool")
    # A local pool places the volume on its host: CloudStack names hosts by uuid, strata's agents by name.
    host, cluster = _route(await lookups.pool(pool_id) if pool_id is not None else None)
    return CreateVolume(
        volume_id=required(request, "Volume"),
        name=name_of(request, "Volume"),
        size_bytes=defaults.volume_size_bytes,
        zone_id=zone,
        pool_id=pool_id,
        vm_id=request.entity_id("VirtualMachine"),
        host=host,
        cluster_id=cluster,
    )


async def resize_volume(request: ActionEvent, lookups: Lookups, defaults: Defaults) -> Command:
    """CloudStack's GB are GiB (`size << 30`); `shrinkok` is not on the bus, so a shrink is refused by strata."""
    volume_id = required(request, "Volume")
    size = resize_bytes(request.description)
    if size is None:
        raise NotCarried("the request carries no new size (a resize to another disk offering)")
    return ResizeVolume(volume_id=volume_id, new_size_bytes=size)


async def migrate_volume(request: ActionEvent, lookups: Lookups, defaults: Defaults) -> Command:
    return MigrateVolume(volume_id=required(request, "Volume"), pool_id=required(request, "StoragePool"))


async def create_snapshot(request: ActionEvent, lookups: Lookups, defaults: Defaults) -> Command:
    return CreateSnapshot(
        snapshot_id=required(request, "Snapshot"),
        volume_id=required(request, "Volume"),
        name=name_of(request, "Snapshot"),
    )


async def create_vm_snapshot(request: ActionEvent, lookups: Lookups, defaults: Defaults) -> Command:
    vm_id = required(request, "VirtualMachine")
    volumes = await lookups.volumes_of_vm(vm_id)
    if not volumes:
        raise InvalidArgument(f"strata knows no volume of VM {vm_id}", field="VirtualMachine")
    return CreateVmSnapshot(
        vm_snapshot_id=required(request, "VMSnapshot"),
        vm_id=vm_id,
        name=name_of(request, "VMSnapshot"),
        volume_ids=tuple(sorted(info.volume_id for info in volumes)),
    )


async def _host_of_vm(lookups: Lookups, vm_id: UUID) -> str | None:
    hosts = await lookups.hosts()
    return next((info.identity.host for info in hosts if any(vm.vm_id == vm_id for vm in info.vms)), None)


async def revert_vm(request: ActionEvent, lookups: Lookups, defaults: Defaults) -> Command:
    vm_id, vm_snapshot_id = required(request, "VirtualMachine"), required(request, "VMSnapshot")
    host = await _host_of_vm(lookups, vm_id)
    if host is None:
        raise InvalidArgument(f"no registered host runs VM {vm_id}", field="VirtualMachine")
    pairs = await lookups.vm_snapshot_pairs(vm_snapshot_id)
    if not pairs:
        raise InvalidArgument(f"strata knows no snapshot of VM snapshot {vm_snapshot_id}", field="VMSnapshot")
    return RevertVmToSnapshot(vm_id=vm_id, vm_snapshot_id=vm_snapshot_id, host=host, snapshots=pairs)


async def create_template(request: ActionEvent, lookups: Lookups, defaults: Defaults) -> Command:
    """A template of a volume, or of one of its snapshots, copied by the pool's agent into the zone's store."""
    template_id = required(request, "VirtualMachineTemplate")
    found = _TEMPLATE_SOURCE.search(request.description)
    if found is None:
        raise NotCarried("the request names no source volume or snapshot (CloudStack's Started does)")
    source = UUID(found.group(2))
    snapshot_id: UUID | None = None
    volume_id = source
    if found.group(1) == "snapshot":
        snapshot = await lookups.snapshot(source)
        if snapshot is None:
            raise InvalidArgument(f"strata knows no snapshot {source}", field="Snapshot")
        snapshot_id, volume_id = source, snapshot.volume_id
    volume = await lookups.volume(volume_id)
    if volume is None or volume.pool_id is None:
        raise InvalidArgument(f"strata knows no volume {volume_id} on a pool", field="Volume")
    host, cluster = _route(await lookups.pool(volume.pool_id))
    return CreateImageFromVolume(
        image_id=template_id,
        name=name_of(request, "VirtualMachineTemplate"),
        zone_id=volume.zone_id,
        volume_id=volume_id,
        snapshot_id=snapshot_id,
        pool_id=volume.pool_id,
        size_bytes=volume.size_bytes,
        host=host,
        cluster_id=cluster,
    )


async def copy_template(request: ActionEvent, lookups: Lookups, defaults: Defaults) -> Command:
    """A copy to one zone; strata copies to one zone per command, so a copy to several is recorded."""
    template_id = required(request, "VirtualMachineTemplate")
    found = _COPY_ZONES.search(request.description)
    if found is None:
        raise NotCarried("the request names no destination zone")
    zones = re.findall(_UUID, found.group(1))
    if len(zones) != 1:
        raise NotCarried(f"a copy to {len(zones)} zones at once (strata copies to one zone per command)")
    return CopyImage(image_id=template_id, zone_id=UUID(zones[0]))


async def restore_backup(request: ActionEvent, lookups: Lookups, defaults: Defaults) -> Command:
    """In place over the volume the event names (its VM stopped, checked by strata on the VM's host)."""
    backup_id = required(request, "Backup")
    volume_id = request.entity_id("Volume")
    if volume_id is None:
        raise NotCarried("the request names no Volume to restore over (strata has no backup query on the bus)")
    volume = await lookups.volume(volume_id)
    if volume is None:
        raise InvalidArgument(f"strata knows no volume {volume_id}", field="Volume")
    host = await _host_of_vm(lookups, volume.vm_id) if volume.vm_id is not None else None
    if volume.vm_id is not None and host is None:
        raise InvalidArgument(f"no registered host runs VM {volume.vm_id}", field="VirtualMachine")
    restore_id = uuid.uuid5(_RESTORE_IDS, f"{backup_id}:{volume_id}:{request.occurred_at.isoformat()}")
    return RestoreBackup(
        restore_id=restore_id, backup_id=backup_id, volume_id=volume_id, in_place=True, vm_id=volume.vm_id, host=host
    )

"""`LibvirtHypervisor`: the `Hypervisor` port on the libvirt binding (`qemu:///system` on a host, `test:///default`
in tests and the demo). libvirt calls block, so each runs in a worker thread; libvirt errors become schemas.errors.
"""

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar
from uuid import UUID
from xml.etree import ElementTree

import libvirt
import structlog

from schemas.errors import FailedPrecondition, NotFound, StrataError, Transient
from schemas.vm import PowerState, VmDisk
from services.agent.ports import VmDescription

log = structlog.get_logger(__name__)

T = TypeVar("T")

_POWER_STATES = {
    libvirt.VIR_DOMAIN_RUNNING: PowerState.RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: PowerState.RUNNING,
    libvirt.VIR_DOMAIN_PAUSED: PowerState.PAUSED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: PowerState.PAUSED,
    libvirt.VIR_DOMAIN_SHUTDOWN: PowerState.RUNNING,
    libvirt.VIR_DOMAIN_SHUTOFF: PowerState.STOPPED,
    libvirt.VIR_DOMAIN_CRASHED: PowerState.STOPPED,
}
# Errors that say the hypervisor itself is unreachable for now: the same request may work later.
_TRANSIENT_CODES = {libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_ERR_RPC, libvirt.VIR_ERR_NO_CONNECT}
_SHUTDOWN_POLL = 0.1


def _translate(error: libvirt.libvirtError, what: str) -> StrataError:
    code = error.get_error_code()
    text = error.get_error_message() or "libvirt error"
    if code == libvirt.VIR_ERR_NO_DOMAIN:
        return NotFound(f"{what}: the hypervisor knows no such VM", field="vm_id")
    if code == libvirt.VIR_ERR_OPERATION_INVALID:
        return FailedPrecondition(f"{what}: {text}")
    if code in _TRANSIENT_CODES:
        return Transient(f"{what}: hypervisor unreachable: {text}")
    return StrataError(f"{what}: {text}")


def _log_libvirt_error(context: object, error: tuple[object, ...]) -> None:
    """libvirt's own error printer, routed into the log: by default it writes a plain line on stderr for every
    error, even one the agent expects and answers (a VM not found), which breaks the daemon's JSON log."""
    code, _domain, message, *_ = error
    log.debug("libvirt reported an error", code=code, libvirt_message=message)


class LibvirtHypervisor:
    """The VMs of the host that `uri` names."""

    def __init__(self, uri: str) -> None:
        libvirt.registerErrorHandler(_log_libvirt_error, None)  # process-wide and idempotent
        self.uri = uri
        self._connection: libvirt.virConnect | None = None

    async def _call(self, what: str, work: Callable[[libvirt.virConnect], T]) -> T:
        def run() -> T:
            try:
                if self._connection is None:
                    self._connection = libvirt.open(self.uri)
                return work(self._connection)
            except libvirt.libvirtError as error:
                raise _translate(error, what) from None

        return await asyncio.to_thread(run)

    async def describe_vm(self, vm_id: UUID) -> VmDescription:
        """The VM's power state and disks in device order."""

        def describe(connection: libvirt.virConnect) -> VmDescription:
            domain = connection.lookupByUUIDString(str(vm_id))
            state = _POWER_STATES.get(domain.state()[0], PowerState.UNKNOWN)
            return VmDescription(vm_id, state, _disks(domain.XMLDesc()))

        return await self._call(f"describe VM {vm_id}", describe)

    async def list_vms(self) -> tuple[VmDescription, ...]:
        """Every domain, defined or running, by name."""

        def list_all(connection: libvirt.virConnect) -> tuple[VmDescription, ...]:
            return tuple(
                VmDescription(
                    UUID(domain.UUIDString()),
                    _POWER_STATES.get(domain.state()[0], PowerState.UNKNOWN),
                    _disks(domain.XMLDesc()),
                    name=domain.name(),
                )
                for domain in sorted(connection.listAllDomains(), key=lambda domain: domain.name())
            )

        return await self._call("list VMs", list_all)

    async def stop_vm(self, vm_id: UUID, *, force: bool = False, grace_seconds: float = 60.0) -> bool:
        """Shut the VM down cleanly, powering it off if the guest does not within `grace_seconds`."""

        def stop(connection: libvirt.virConnect) -> bool:
            domain = connection.lookupByUUIDString(str(vm_id))
            if not domain.isActive():
                return False
            if not force:
                domain.shutdown()
                deadline = time.monotonic() + grace_seconds
                while domain.isActive() and time.monotonic() < deadline:
                    time.sleep(_SHUTDOWN_POLL)  # in a worker thread: the event loop keeps running
            if domain.isActive():
                domain.destroy()
            return True

        return await self._call(f"stop VM {vm_id}", stop)

    async def start_vm(self, vm_id: UUID) -> bool:
        """Start a defined VM; a running one is left alone."""

        def start(connection: libvirt.virConnect) -> bool:
            domain = connection.lookupByUUIDString(str(vm_id))
            if domain.isActive():
                return False
            domain.create()
            return True

        return await self._call(f"start VM {vm_id}", start)

    async def close(self) -> None:
        """Close the libvirt connection if one was opened."""
        connection, self._connection = self._connection, None
        if connection is not None:
            await asyncio.to_thread(connection.close)


def _disks(xml: str) -> tuple[VmDisk, ...]:
    """The disks of a domain's XML that have a source, in target device order."""
    disks: list[VmDisk] = []
    # The XML comes from the local libvirt daemon, which the agent trusts like the hypervisor itself.
    for disk in ElementTree.fromstring(xml).iterfind("./devices/disk"):  # noqa: S314
        target = disk.find("target")
        source = disk.find("source")
        if target is None or source is None:
            continue
        path = source.get("file") or source.get("dev") or source.get("name") or ""
        disks.append(VmDisk(device=target.get("dev", ""), source=path))
    return tuple(sorted(disks, key=lambda disk: disk.device))

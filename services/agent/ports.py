"""The agent's port to the hypervisor of its host: describe, stop and start a VM.

The adapter is `LibvirtHypervisor`; libvirt's `test:///default` driver stands in for a real host in tests and the
demo. Stop and start are idempotent: a saga that retries a step must not fail because the first try worked.
"""

from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from schemas.vm import PowerState, VmDisk


@dataclass(frozen=True, slots=True)
class VmDescription:
    """A VM as the hypervisor sees it now."""

    vm_id: UUID
    power_state: PowerState
    disks: tuple[VmDisk, ...]
    name: str = ""


class Hypervisor(Protocol):
    """The VMs of one host. Errors are `schemas.errors` classes (`NotFound` for an unknown VM)."""

    async def describe_vm(self, vm_id: UUID) -> VmDescription:
        """The VM's power state and disks; `NotFound` if the hypervisor does not know it."""
        ...

    async def list_vms(self) -> tuple[VmDescription, ...]:
        """Every VM the hypervisor knows (defined or running), with its name, by name."""
        ...

    async def stop_vm(self, vm_id: UUID, *, force: bool = False, grace_seconds: float = 60.0) -> bool:
        """Stop the VM (clean shutdown, power off after the grace period or when `force`); True if it was running."""
        ...

    async def start_vm(self, vm_id: UUID) -> bool:
        """Start the VM; True if it was stopped (False: it already ran, nothing was done)."""
        ...

    async def close(self) -> None:
        """Release the connection to the hypervisor."""
        ...

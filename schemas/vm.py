"""Messages of the VM domain as far as storage needs it: the agent stops, starts and describes a VM.

The agent drives the hypervisor (libvirt) on the host where the VM runs, so these are agent commands routed by
host. Stopping a stopped VM and starting a running one succeed: a saga that retries a step must not fail on it.
"""

from enum import StrEnum
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from schemas.agent import AgentCommand
from schemas.envelope import Event
from schemas.errors import ErrorInfo
from schemas.registry import message


class PowerState(StrEnum):
    """A VM's power state as the hypervisor reports it."""

    RUNNING = "running"
    STOPPED = "stopped"
    PAUSED = "paused"
    UNKNOWN = "unknown"


class VmDisk(BaseModel):
    """One disk of a VM as the hypervisor sees it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    device: str = Field(description="The guest's device name, e.g. `vda`.")
    source: str = Field(description="The disk's source on the host (a file path, a block device).")
    volume_id: UUID | None = Field(default=None, description="The strata volume behind it, when strata knows it.")


@message("vm.stop")
class StopVm(AgentCommand):
    """Stop a VM (a clean shutdown first, a forced power-off after the grace period or when `force`)."""

    vm_id: UUID
    force: bool = Field(default=False, description="Power off at once instead of asking the guest to shut down.")
    grace_seconds: float = Field(default=60.0, gt=0, description="How long a clean shutdown may take.")


@message("vm.stopped")
class VmStopped(Event):
    """A VM is stopped (or already was)."""

    vm_id: UUID
    host: str
    was_running: bool = Field(description="False when the VM was already stopped: nothing was done.")


@message("vm.stop.failed")
class VmStopFailed(Event):
    """A VM could not be stopped."""

    vm_id: UUID
    host: str
    error: ErrorInfo


@message("vm.start")
class StartVm(AgentCommand):
    """Start a VM on its host."""

    vm_id: UUID


@message("vm.started")
class VmStarted(Event):
    """A VM is running (or already was)."""

    vm_id: UUID
    host: str
    was_stopped: bool = Field(description="False when the VM was already running: nothing was done.")


@message("vm.start.failed")
class VmStartFailed(Event):
    """A VM could not be started."""

    vm_id: UUID
    host: str
    error: ErrorInfo


@message("vm.describe")
class DescribeVm(AgentCommand):
    """Ask the agent for a VM's power state and disks (a query: it changes nothing)."""

    vm_id: UUID


@message("vm.described")
class VmDescribed(Event):
    """A VM's power state and disks at the moment the agent looked."""

    vm_id: UUID
    host: str
    power_state: PowerState
    disks: tuple[VmDisk, ...] = Field(default=(), description="The VM's disks in device order.")


@message("vm.describe.failed")
class VmDescribeFailed(Event):
    """A VM could not be described (unknown to the hypervisor, hypervisor unreachable)."""

    vm_id: UUID
    host: str
    error: ErrorInfo

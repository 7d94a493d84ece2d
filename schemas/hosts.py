"""Hosts as their agents report them: a heartbeat that registers the host and says what it runs, and the query
that lists them (`strata host list`, `strata vm list`).

The storage service keeps the registry: it places pools and volumes on hosts and clusters and routes the agents'
data-plane commands to them, so it is where an unknown host or cluster is known to be unknown.
"""

from datetime import datetime
from enum import StrEnum
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from schemas.envelope import Command, Event
from schemas.registry import message
from schemas.vm import PowerState, VmDisk

MISSED_HEARTBEATS = 3  # a host whose agent missed this many heartbeats in a row is Disconnected


class HostState(StrEnum):
    """A host's state as CloudStack names it."""

    UP = "Up"
    DISCONNECTED = "Disconnected"


class HostVm(BaseModel):
    """A VM the host's hypervisor knows."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    vm_id: UUID = Field(description="The hypervisor's UUID of the VM.")
    name: str
    power_state: PowerState
    disks: tuple[VmDisk, ...] = ()


class HostIdentity(BaseModel):
    """Where an agent runs and what it drives."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field(min_length=1, description="The host's name (its agent's queue is `agent.<host>`).")
    cluster_id: str = Field(min_length=1)
    zone: str = Field(default="default", description="The zone's name or id, as the agent was configured.")
    hypervisor: str = Field(description="The hypervisor's kind (kvm, ...).")
    libvirt_uri: str
    version: str = Field(description="The agent's strata version.")


@message("host.heartbeat")
class HostHeartbeat(Event):
    """An agent is alive: sent when it starts and every `interval_seconds`; the first one registers the host."""

    identity: HostIdentity
    interval_seconds: float = Field(gt=0, description="When the next heartbeat is due.")
    vms: tuple[HostVm, ...] = Field(default=(), description="The VMs the hypervisor knows now.")


class HostInfo(BaseModel):
    """A host as `strata host list` shows it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    identity: HostIdentity
    state: HostState
    first_seen: datetime
    last_seen: datetime
    vms: tuple[HostVm, ...] = ()


@message("host.list")
class ListHosts(Command):
    """A query: every host an agent ever registered, with its state and VMs."""


@message("host.listed")
class HostsListed(Event):
    """The answer to `host.list`."""

    hosts: tuple[HostInfo, ...]

"""The agent's heartbeat: it registers its host with the storage service when it starts, then says every
`interval` seconds that it is alive and which VMs its hypervisor knows (`strata host list`, `strata vm list`).

A heartbeat is published directly, not through the outbox: one lost is replaced by the next, and a missed series
is exactly what marks the host Disconnected.
"""

import asyncio
import contextlib
from importlib.metadata import PackageNotFoundError, version

import structlog

from bus.errors import Unroutable
from bus.facade import Bus
from bus.ports import Transport
from schemas import Envelope, StrataError
from schemas.hosts import HostHeartbeat, HostIdentity, HostVm
from services.agent.ports import Hypervisor

log = structlog.get_logger(__name__)


def strata_version() -> str:
    """The installed strata's version."""
    try:
        return version("strata")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


class Heartbeat:
    """Publishes `HostHeartbeat` for one host at once and then every `interval` seconds, until cancelled."""

    def __init__(
        self, transport: Transport, identity: HostIdentity, hypervisor: Hypervisor, *, interval: float
    ) -> None:
        self.bus = Bus(transport)
        self.identity = identity
        self.hypervisor = hypervisor
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def beat(self) -> None:
        """Publish one heartbeat; a failure is logged (the next one tries again), never raised."""
        try:
            vms = tuple(
                HostVm(vm_id=vm.vm_id, name=vm.name, power_state=vm.power_state, disks=vm.disks)
                for vm in await self.hypervisor.list_vms()
            )
            heartbeat = HostHeartbeat(identity=self.identity, interval_seconds=self.interval, vms=vms)
            await self.bus.publish(Envelope.wrap(heartbeat, producer=f"agent@{self.identity.host}"))
        except Unroutable:  # the storage service never started in this namespace: nobody keeps the registry yet
            log.debug("heartbeat not delivered: no storage service queue", host=self.identity.host)
        except StrataError as error:
            log.warning("heartbeat failed", host=self.identity.host, error=error.message)

    async def start(self) -> None:
        """Beat once (the host is registered before the agent reports started), then every `interval` seconds."""
        await self.beat()
        self._task = asyncio.create_task(self._run(), name=f"heartbeat of {self.identity.host}")

    async def stop(self) -> None:
        """Stop beating (the host turns Disconnected after the missed heartbeats)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)  # the heartbeat's period, not a wait for a condition
            await self.beat()

"""The agent's handler table: the data-plane commands it runs where the storage is, and the VM commands.

Each handler names the resources it touches (checked against the saga's fencing token), does the work through the
pool's plugin driver or the hypervisor, and answers (see `answering`). Handlers take the `Agent` as a fourth
argument; `bootstrap` binds it.
"""

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from bus.ports import UnitOfWork
from plugins.sdk.types import SnapshotKind as PluginSnapshotKind
from schemas import Envelope, Event, Message
from schemas.agent import (
    AttachPoolToHost,
    CollectPoolStats,
    CopyVolumeFromStore,
    CopyVolumeToStore,
    CreateVolumeOnPool,
    DeleteVolumeOnPool,
    DetachPoolFromHost,
    PoolAttachedToHost,
    PoolAttachToHostFailed,
    PoolDetachedFromHost,
    PoolDetachFromHostFailed,
    PoolStatsFailed,
    PoolStatsReported,
    ResizeVolumeOnPool,
    VolumeCreatedOnPool,
    VolumeCreateOnPoolFailed,
    VolumeDeletedOnPool,
    VolumeDeleteOnPoolFailed,
    VolumeResizedOnPool,
    VolumeResizeOnPoolFailed,
)
from schemas.errors import InvalidArgument, NotFound, Unimplemented
from schemas.snapshot import (
    CreateSnapshotOnPool,
    DeleteSnapshotOnPool,
    RevertVolumeOnPool,
    SnapshotCreatedOnPool,
    SnapshotCreateOnPoolFailed,
    SnapshotDeletedOnPool,
    SnapshotDeleteOnPoolFailed,
    SnapshotKind,
    VolumeRevertedOnPool,
    VolumeRevertOnPoolFailed,
)
from schemas.vm import (
    DescribeVm,
    StartVm,
    StopVm,
    VmDescribed,
    VmDescribeFailed,
    VmStarted,
    VmStartFailed,
    VmStopFailed,
    VmStopped,
)
from services.agent.answering import Agent, vm_resource, volume_resource
from services.agent.copying import copy_volume_from_store, copy_volume_to_store

# --------------------------------------------------------------------------------------------------- pools


async def attach_pool(command: AttachPoolToHost, envelope: Envelope, uow: UnitOfWork, agent: Agent) -> None:
    """Open the pool's plugin with its configuration, take the storage into use, report capacity."""

    async def work() -> Event:
        driver = await agent.drivers.attach(uow.connection, command.pool_id, command.plugin, command.config, agent.host)
        stats = await driver.stats()
        return PoolAttachedToHost(
            pool_id=command.pool_id, host=agent.host, capacity_bytes=stats.capacity_bytes, used_bytes=stats.used_bytes
        )

    await agent.run(
        uow,
        envelope,
        work,
        lambda error: PoolAttachToHostFailed(pool_id=command.pool_id, host=agent.host, error=error),
    )


async def detach_pool(command: DetachPoolFromHost, envelope: Envelope, uow: UnitOfWork, agent: Agent) -> None:
    """Release a deleted pool's storage and forget it; a pool never attached (or detached before) is fine."""

    async def work() -> Event:
        try:
            driver = await agent.drivers.primary(uow.connection, command.pool_id)
        except NotFound:
            return PoolDetachedFromHost(pool_id=command.pool_id, host=agent.host)
        await driver.remove_pool(str(command.pool_id))
        await agent.drivers.forget(uow.connection, command.pool_id)
        return PoolDetachedFromHost(pool_id=command.pool_id, host=agent.host)

    await agent.run(
        uow,
        envelope,
        work,
        lambda error: PoolDetachFromHostFailed(pool_id=command.pool_id, host=agent.host, error=error),
    )


async def collect_pool_stats(command: CollectPoolStats, envelope: Envelope, uow: UnitOfWork, agent: Agent) -> None:
    """Report the pool's capacity and use as its plugin sees them."""

    async def work() -> Event:
        stats = await (await agent.drivers.primary(uow.connection, command.pool_id)).stats()
        return PoolStatsReported(
            pool_id=command.pool_id,
            host=agent.host,
            capacity_bytes=stats.capacity_bytes,
            used_bytes=stats.used_bytes,
            read_iops=stats.read_iops,
            write_iops=stats.write_iops,
        )

    await agent.run(
        uow, envelope, work, lambda error: PoolStatsFailed(pool_id=command.pool_id, host=agent.host, error=error)
    )


# ------------------------------------------------------------------------------------------------- volumes


async def create_volume(command: CreateVolumeOnPool, envelope: Envelope, uow: UnitOfWork, agent: Agent) -> None:
    """Create the volume's data on its pool (the same command again finds it made)."""

    async def work() -> Event:
        if command.template_id is not None:
            raise Unimplemented(
                "creating a volume from a template is not supported by the agent yet", field="template_id"
            )
        driver = await agent.drivers.primary(uow.connection, command.pool_id)
        volume = await driver.create_volume(str(command.volume_id), command.size_bytes)
        return VolumeCreatedOnPool(
            pool_id=command.pool_id, volume_id=command.volume_id, size_bytes=volume.size_bytes, locator=volume.path
        )

    await agent.run(
        uow,
        envelope,
        work,
        lambda error: VolumeCreateOnPoolFailed(pool_id=command.pool_id, volume_id=command.volume_id, error=error),
        resources=[volume_resource(command.volume_id)],
    )


async def delete_volume(command: DeleteVolumeOnPool, envelope: Envelope, uow: UnitOfWork, agent: Agent) -> None:
    """Delete the volume's data; a volume already gone counts as deleted."""

    async def work() -> Event:
        driver = await agent.drivers.primary(uow.connection, command.pool_id)
        # Already gone (a retry after a crash): the outcome is the same.
        with contextlib.suppress(NotFound):
            await driver.delete_volume(str(command.volume_id))
        return VolumeDeletedOnPool(pool_id=command.pool_id, volume_id=command.volume_id)

    await agent.run(
        uow,
        envelope,
        work,
        lambda error: VolumeDeleteOnPoolFailed(pool_id=command.pool_id, volume_id=command.volume_id, error=error),
        resources=[volume_resource(command.volume_id)],
    )


async def resize_volume(command: ResizeVolumeOnPool, envelope: Envelope, uow: UnitOfWork, agent: Agent) -> None:
    """Change the volume's virtual size; shrinking needs `allow_shrink` (and a plugin that can)."""

    async def work() -> Event:
        driver = await agent.drivers.primary(uow.connection, command.pool_id)
        current = await driver.get_volume(str(command.volume_id))
        if command.new_size_bytes < current.size_bytes and not command.allow_shrink:
            raise InvalidArgument(
                f"volume {command.volume_id} is {current.size_bytes} bytes: shrinking to {command.new_size_bytes} "
                "loses data and needs allow_shrink",
                field="new_size_bytes",
            )
        volume = await driver.resize_volume(str(command.volume_id), command.new_size_bytes)
        return VolumeResizedOnPool(
            pool_id=command.pool_id, volume_id=command.volume_id, new_size_bytes=volume.size_bytes
        )

    await agent.run(
        uow,
        envelope,
        work,
        lambda error: VolumeResizeOnPoolFailed(pool_id=command.pool_id, volume_id=command.volume_id, error=error),
        resources=[volume_resource(command.volume_id)],
    )


# ----------------------------------------------------------------------------------------------- snapshots


async def create_snapshot(command: CreateSnapshotOnPool, envelope: Envelope, uow: UnitOfWork, agent: Agent) -> None:
    """Take a full or delta snapshot of the volume on its pool."""

    async def work() -> Event:
        driver = await agent.drivers.snapshots(uow.connection, command.pool_id)
        taken = await driver.create_snapshot(
            str(command.snapshot_id), str(command.volume_id), PluginSnapshotKind(command.kind.value)
        )
        return SnapshotCreatedOnPool(
            pool_id=command.pool_id,
            volume_id=command.volume_id,
            snapshot_id=command.snapshot_id,
            kind=SnapshotKind(taken.kind.value),
            physical_size_bytes=taken.size_bytes,
        )

    await agent.run(
        uow,
        envelope,
        work,
        lambda error: SnapshotCreateOnPoolFailed(
            pool_id=command.pool_id, volume_id=command.volume_id, snapshot_id=command.snapshot_id, error=error
        ),
        resources=[volume_resource(command.volume_id)],
    )


async def revert_volume(command: RevertVolumeOnPool, envelope: Envelope, uow: UnitOfWork, agent: Agent) -> None:
    """Make the volume's data the snapshot's again."""

    async def work() -> Event:
        driver = await agent.drivers.snapshots(uow.connection, command.pool_id)
        await driver.revert_to_snapshot(str(command.volume_id), str(command.snapshot_id))
        return VolumeRevertedOnPool(
            pool_id=command.pool_id, volume_id=command.volume_id, snapshot_id=command.snapshot_id
        )

    await agent.run(
        uow,
        envelope,
        work,
        lambda error: VolumeRevertOnPoolFailed(
            pool_id=command.pool_id, volume_id=command.volume_id, snapshot_id=command.snapshot_id, error=error
        ),
        resources=[volume_resource(command.volume_id)],
    )


async def delete_snapshot(command: DeleteSnapshotOnPool, envelope: Envelope, uow: UnitOfWork, agent: Agent) -> None:
    """Delete the snapshot's data; a snapshot already gone counts as deleted."""

    async def work() -> Event:
        driver = await agent.drivers.snapshots(uow.connection, command.pool_id)
        # Already gone (a retry after a crash): the outcome is the same.
        with contextlib.suppress(NotFound):
            await driver.delete_snapshot(str(command.snapshot_id))
        return SnapshotDeletedOnPool(
            pool_id=command.pool_id, volume_id=command.volume_id, snapshot_id=command.snapshot_id
        )

    await agent.run(
        uow,
        envelope,
        work,
        lambda error: SnapshotDeleteOnPoolFailed(
            pool_id=command.pool_id, volume_id=command.volume_id, snapshot_id=command.snapshot_id, error=error
        ),
        resources=[volume_resource(command.volume_id)],
    )


# ---------------------------------------------------------------------------------------------------- VMs


async def stop_vm(command: StopVm, envelope: Envelope, uow: UnitOfWork, agent: Agent) -> None:
    """Stop the VM (a stopped VM is left alone and reported as such)."""

    async def work() -> Event:
        was_running = await agent.hypervisor.stop_vm(
            command.vm_id, force=command.force, grace_seconds=command.grace_seconds
        )
        return VmStopped(vm_id=command.vm_id, host=agent.host, was_running=was_running)

    await agent.run(
        uow,
        envelope,
        work,
        lambda error: VmStopFailed(vm_id=command.vm_id, host=agent.host, error=error),
        resources=[vm_resource(command.vm_id)],
    )


async def start_vm(command: StartVm, envelope: Envelope, uow: UnitOfWork, agent: Agent) -> None:
    """Start the VM (a running VM is left alone and reported as such)."""

    async def work() -> Event:
        was_stopped = await agent.hypervisor.start_vm(command.vm_id)
        return VmStarted(vm_id=command.vm_id, host=agent.host, was_stopped=was_stopped)

    await agent.run(
        uow,
        envelope,
        work,
        lambda error: VmStartFailed(vm_id=command.vm_id, host=agent.host, error=error),
        resources=[vm_resource(command.vm_id)],
    )


async def describe_vm(command: DescribeVm, envelope: Envelope, uow: UnitOfWork, agent: Agent) -> Message | None:
    """A query: the VM's power state and disks, as a saga step's reply or a request's reply."""

    async def work() -> Event:
        described = await agent.hypervisor.describe_vm(command.vm_id)
        return VmDescribed(
            vm_id=command.vm_id, host=agent.host, power_state=described.power_state, disks=described.disks
        )

    # Describing changes nothing, so it is not fenced; outside a saga the answer is the request's reply only.
    return await agent.run(
        uow,
        envelope,
        work,
        lambda error: VmDescribeFailed(vm_id=command.vm_id, host=agent.host, error=error),
        emit_outside_saga=False,
    )


# The first argument of each handler is its own command class; the table pairs them, so the value type is loose.
AgentHandler = Callable[[Any, Envelope, UnitOfWork, Agent], Awaitable[Message | None]]

COMMAND_HANDLERS: dict[type[Message], AgentHandler] = {
    AttachPoolToHost: attach_pool,
    DetachPoolFromHost: detach_pool,
    CollectPoolStats: collect_pool_stats,
    CreateVolumeOnPool: create_volume,
    DeleteVolumeOnPool: delete_volume,
    ResizeVolumeOnPool: resize_volume,
    CopyVolumeToStore: copy_volume_to_store,
    CopyVolumeFromStore: copy_volume_from_store,
    CreateSnapshotOnPool: create_snapshot,
    RevertVolumeOnPool: revert_volume,
    DeleteSnapshotOnPool: delete_snapshot,
    StopVm: stop_vm,
    StartVm: start_vm,
    DescribeVm: describe_vm,
}

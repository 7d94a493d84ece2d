"""The agent's snapshot commands: take, revert to and delete a volume's snapshots on its pool.

Each handler is `handler(command, envelope, uow, agent)`: it names the resources it touches (checked against a
saga's fencing token), does the work through the pool's plugin driver or the hypervisor, and answers
(`answering.Agent.run`). The table is in `handlers`.
"""

import contextlib

from bus.ports import UnitOfWork
from plugins.sdk.types import SnapshotKind as PluginSnapshotKind
from schemas import Envelope, Event
from schemas.errors import NotFound
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
from services.agent.answering import Agent, volume_resource


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
            physical_size_bytes=taken.size_bytes if taken.physical_size_bytes is None else taken.physical_size_bytes,
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

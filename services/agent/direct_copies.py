"""A direct migration's copy: this agent reaches both pools, so the volume goes from one to the other without a
zone-wide store. Where the source volume is a file a hypervisor opens (its `path`, in its `format`), the destination
plugin reads it directly (`copy_in` from it: one pass, the backing chain flattened); otherwise the source plugin
writes it to a staging file on this host first (`copy_out`). The source copy is never changed; a copy cut short is
done again by the same command (the destination plugin's own record finishes or redoes it), and the saga deletes
the destination copy if the migration is undone.
"""

import asyncio
from functools import partial
from pathlib import Path
from uuid import UUID

from bus.ports import UnitOfWork
from plugins.sdk.progress import ProgressCallback
from plugins.sdk.protocols import PrimaryStorage
from plugins.sdk.types import Volume, VolumeFormat
from schemas import Envelope, Event
from schemas.agent import CopyProgressed, CopyStage
from schemas.migration import CopyVolumeBetweenPools, VolumeCopiedBetweenPools, VolumeCopyBetweenPoolsFailed
from services.agent.answering import Agent, volume_resource
from services.agent.progress import progress_events

DIRECT = "direct"  # the object id the progress events carry: no store object is involved


def _progressed(host: str, volume_id: UUID, pool_id: UUID, done: int, total: int) -> Event:
    return CopyProgressed(
        pool_id=pool_id,
        volume_id=volume_id,
        object_id=DIRECT,
        host=host,
        stage=CopyStage.POOL,
        done_bytes=done,
        total_bytes=total,
    )


async def copy_between_pools(
    command: CopyVolumeBetweenPools, envelope: Envelope, uow: UnitOfWork, agent: Agent
) -> None:
    """Copy the volume from its source pool into the destination pool, both reached by this agent."""

    async def work() -> Event:
        source = await agent.drivers.primary(uow.connection, command.source_pool_id)
        target = await agent.drivers.primary(uow.connection, command.pool_id)
        copied = await _copy(agent, envelope, command, source, target)  # within the command's deadline (Agent.run)
        return VolumeCopiedBetweenPools(
            source_pool_id=command.source_pool_id,
            pool_id=command.pool_id,
            volume_id=command.volume_id,
            host=agent.host,
            size_bytes=copied.size_bytes,
            locator=copied.path,
        )

    await agent.run(
        uow,
        envelope,
        work,
        lambda error: VolumeCopyBetweenPoolsFailed(
            source_pool_id=command.source_pool_id, pool_id=command.pool_id, volume_id=command.volume_id, error=error
        ),
        resources=[volume_resource(command.volume_id)],
    )


async def _copy(
    agent: Agent, envelope: Envelope, command: CopyVolumeBetweenPools, source: PrimaryStorage, target: PrimaryStorage
) -> Volume:
    volume_id = str(command.volume_id)
    volume = await source.get_volume(volume_id)
    readable = Path(volume.path)

    def reporter(pool_id: UUID) -> "partial[Event]":
        return partial(_progressed, agent.host, command.volume_id, pool_id)

    report: ProgressCallback
    if await asyncio.to_thread(readable.is_file):
        async with progress_events(agent.units, envelope, reporter(command.pool_id), producer=agent.producer) as report:
            return await target.copy_in(volume_id, readable, source_format=volume.format, progress=report)
    async with agent.staging_area.directory() as staging:
        staged = staging / f"{volume_id}.raw"
        async with progress_events(
            agent.units, envelope, reporter(command.source_pool_id), producer=agent.producer
        ) as report:
            await source.copy_out(volume_id, staged, target_format=VolumeFormat.RAW, progress=report)
        async with progress_events(agent.units, envelope, reporter(command.pool_id), producer=agent.producer) as report:
            return await target.copy_in(volume_id, staged, source_format=VolumeFormat.RAW, progress=report)

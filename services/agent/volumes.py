"""The agent's volume commands: create, delete and resize a volume's data on its pool.

Each handler is `handler(command, envelope, uow, agent)`: it names the resources it touches (checked against a
saga's fencing token), does the work through the pool's plugin driver or the hypervisor, and answers
(`answering.Agent.run`). The table is in `handlers`.
"""

import contextlib
from pathlib import Path

from bus.ports import UnitOfWork
from plugins.sdk.capabilities import Capability
from plugins.sdk.types import TemplateMode
from schemas import Envelope, Event
from schemas.agent import (
    CreateVolumeOnPool,
    DeleteVolumeOnPool,
    ResizeVolumeOnPool,
    VolumeCreatedOnPool,
    VolumeCreateOnPoolFailed,
    VolumeDeletedOnPool,
    VolumeDeleteOnPoolFailed,
    VolumeResizedOnPool,
    VolumeResizeOnPoolFailed,
)
from schemas.errors import InvalidArgument, NotFound
from services.agent.answering import Agent, volume_resource
from services.agent.copying import BASE_COPY_DEADLINE, ensure_base_copy


async def create_volume(command: CreateVolumeOnPool, envelope: Envelope, uow: UnitOfWork, agent: Agent) -> None:
    """Create the volume's data on its pool (the same command again finds it made)."""

    async def work() -> Event:
        driver = await agent.drivers.primary(uow.connection, command.pool_id)
        if command.base is None:
            if command.template_id is not None:
                raise InvalidArgument("a volume from a template needs the template's base copy", field="base")
            volume = await driver.create_volume(str(command.volume_id), command.size_bytes)
            return VolumeCreatedOnPool(
                pool_id=command.pool_id, volume_id=command.volume_id, size_bytes=volume.size_bytes, locator=volume.path
            )
        base = await ensure_base_copy(
            agent,
            driver,
            envelope,
            command.pool_id,
            command.base,
            deadline_seconds=command.deadline_seconds or BASE_COPY_DEADLINE,
        )
        linked = await agent.drivers.claims(uow.connection, command.pool_id, Capability.LINKED_CLONE)
        volume = await driver.create_volume(
            str(command.volume_id),
            command.size_bytes,
            template=Path(base.path),
            template_mode=TemplateMode.BACKING if linked else TemplateMode.COPY,
        )
        return VolumeCreatedOnPool(
            pool_id=command.pool_id,
            volume_id=command.volume_id,
            size_bytes=volume.size_bytes,
            locator=volume.path,
            base_volume_id=command.base.volume_id,
            linked=linked,
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

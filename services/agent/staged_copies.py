"""Deleting a staged copy from a zone-wide store: the clean-up of a migration that staged a volume there."""

from bus.ports import UnitOfWork
from schemas import Envelope, Event
from schemas.migration import DeleteStagedCopy, StagedCopyDeleted, StagedCopyDeleteFailed
from services.agent.answering import Agent


async def delete_staged_copy(command: DeleteStagedCopy, envelope: Envelope, uow: UnitOfWork, agent: Agent) -> None:
    """Delete the object from the store; one already gone is deleted (the store's delete is idempotent)."""

    async def work() -> Event:
        store = await agent.drivers.store(command.store.store_id, command.store.plugin, command.store.config)
        await store.delete_image(command.object_id)
        return StagedCopyDeleted(store_id=command.store.store_id, object_id=command.object_id)

    await agent.run(
        uow,
        envelope,
        work,
        lambda error: StagedCopyDeleteFailed(store_id=command.store.store_id, object_id=command.object_id, error=error),
    )

"""The agent's part of a coalesce: merge the volume's hidden layers on its pool (DESIGN §5).

The plugin measures the room first, merges, and switches each merged layer in by a rename (the pivot); a call
after a crash finds the merge half done and finishes it. The answer says the chain after and what it freed.
"""

from bus.ports import UnitOfWork
from plugins.sdk.types import Chain
from schemas import Envelope, Event
from schemas.chain import CoalesceVolumeOnPool, VolumeCoalescedOnPool, VolumeCoalesceOnPoolFailed
from services.agent.answering import Agent, volume_resource


def _allocated(chain: Chain) -> int:
    return sum(link.allocated_bytes for link in chain.links)


async def coalesce_volume(command: CoalesceVolumeOnPool, envelope: Envelope, uow: UnitOfWork, agent: Agent) -> None:
    """Merge every hidden layer of the volume with a single child into that child."""

    async def work() -> Event:
        driver = await agent.drivers.snapshots(uow.connection, command.pool_id)
        before = await driver.describe_chain(str(command.volume_id))
        after = await driver.coalesce(str(command.volume_id))
        return VolumeCoalescedOnPool(
            pool_id=command.pool_id,
            volume_id=command.volume_id,
            layers=len(after.links),
            hidden_layers=sum(1 for link in after.links if link.snapshot_id is None and not link.active),
            allocated_before=_allocated(before),
            allocated_after=_allocated(after),
        )

    await agent.run(
        uow,
        envelope,
        work,
        lambda error: VolumeCoalesceOnPoolFailed(pool_id=command.pool_id, volume_id=command.volume_id, error=error),
        resources=[volume_resource(command.volume_id)],
    )

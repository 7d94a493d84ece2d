"""The agent's pool commands: attach a pool to this host, change its configuration, detach it, report its
capacity and use.

Each handler is `handler(command, envelope, uow, agent)`: it names the resources it touches (checked against a
saga's fencing token), does the work through the pool's plugin driver or the hypervisor, and answers
(`answering.Agent.run`). The table is in `handlers`.
"""

from bus.ports import UnitOfWork
from schemas import Envelope, Event
from schemas.agent import (
    AttachPoolToHost,
    CollectPoolStats,
    DetachPoolFromHost,
    PoolAttachedToHost,
    PoolAttachToHostFailed,
    PoolDetachedFromHost,
    PoolDetachFromHostFailed,
    PoolStatsFailed,
    PoolStatsReported,
)
from schemas.errors import NotFound
from schemas.pool_settings import PoolReconfiguredOnHost, PoolReconfigureOnHostFailed, ReconfigurePoolOnHost
from services.agent.answering import Agent


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


async def reconfigure_pool(command: ReconfigurePoolOnHost, envelope: Envelope, uow: UnitOfWork, agent: Agent) -> None:
    """Merge configuration changes into the pool's kept configuration, reach the pool with them, keep them."""

    async def work() -> Event:
        masked = await agent.drivers.reconfigure(uow.connection, command.pool_id, command.changes, agent.host)
        return PoolReconfiguredOnHost(pool_id=command.pool_id, host=agent.host, masked_config=masked)

    await agent.run(
        uow,
        envelope,
        work,
        lambda error: PoolReconfigureOnHostFailed(pool_id=command.pool_id, host=agent.host, error=error),
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

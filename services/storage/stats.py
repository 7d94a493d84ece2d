"""Periodic collection of pool statistics: ask an agent of each pool in use (`agent.pool.stats`); the answers
(`agent.pool.stats.reported`) become `pool.stats.collected` events in `pools.pool_stats_reported`."""

import asyncio
import contextlib

import structlog

from bus.ports import UnitOfWorkFactory
from schemas import Envelope
from schemas.agent import CollectPoolStats
from schemas.storage import PoolState
from services.storage import repository
from services.storage.context import Storage, agent_route

log = structlog.get_logger(__name__)

# Pools whose storage is in use and reachable: the ones worth asking.
_COLLECTED = frozenset({PoolState.UP, PoolState.DISABLED, PoolState.PREPARE_FOR_MAINTENANCE})


class StatsCollector:
    """Every `interval` seconds, one unit of work emits a statistics request per pool in use."""

    def __init__(self, units: UnitOfWorkFactory, storage: Storage, *, interval: float) -> None:
        self.units = units
        self.storage = storage
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def collect_once(self) -> int:
        """Ask for every pool's statistics now; return how many pools were asked."""
        async with self.units.begin("storage.stats", None) as uow:
            assert uow is not None  # no incoming message, so never a duplicate
            asked = 0
            for pool in await repository.list_pools(uow.connection):
                if pool.state in _COLLECTED:
                    host, cluster_id = agent_route(pool)
                    command = CollectPoolStats(pool_id=pool.pool_id, host=host, cluster_id=cluster_id)
                    uow.emit(Envelope.wrap(command, producer=self.storage.producer))
                    asked += 1
        return asked

    async def run(self) -> None:
        """Collect until cancelled; a failed pass is logged and the next one tries again."""
        while True:
            try:
                await self.collect_once()
            except Exception as error:  # the loop must outlive a database restart
                log.warning("pool statistics pass failed", error_class=type(error).__name__, error=str(error))
            await asyncio.sleep(self.interval)

    async def start(self) -> None:
        """Run the loop in the background."""
        self._task = asyncio.create_task(self.run(), name="storage-stats")

    async def stop(self) -> None:
        """Stop the loop."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

"""A snapshot service that starts late catches up by asking the owner, not by hoping it heard every event.

At start, in the background, it asks the storage service for its pools and its volumes (`pool.list`,
`volume.list`) and keeps what each answer says where it is newer than its copy (the same version guard as the
events, `repository.apply_volume`). Until the storage service answers it asks again every `retry_seconds`; events
keep arriving meanwhile, and whichever is newer wins.
"""

import asyncio
import contextlib

import structlog

from bus.facade import Bus
from bus.ports import Transport, UnitOfWorkFactory
from schemas import Envelope, StrataError
from schemas.storage_queries import ListPools, ListVolumes, PoolsListed, VolumesListed
from services.snapshot import repository as repo

log = structlog.get_logger(__name__)

CONSUMER = "snapshot.catch_up"


class CatchUp:
    """Asks the storage service for what the snapshot service's copy should hold, once, at start."""

    def __init__(
        self, transport: Transport, units: UnitOfWorkFactory, *, timeout: float = 10.0, retry_seconds: float = 2.0
    ) -> None:
        self.bus = Bus(transport)
        self.units = units
        self.timeout = timeout
        self.retry_seconds = retry_seconds
        self._task: asyncio.Task[None] | None = None
        self.done = asyncio.Event()

    async def start(self) -> None:
        """Start asking, in the background."""
        self._task = asyncio.create_task(self._until_answered(), name=CONSUMER)

    async def stop(self) -> None:
        """Stop asking."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _until_answered(self) -> None:
        while True:
            try:
                await self.once()
            except StrataError as error:
                log.info("catching up with the storage service later", error_class=type(error).__name__)
                await asyncio.sleep(self.retry_seconds)
            else:
                self.done.set()
                return

    async def once(self) -> None:
        """Ask for every pool and volume, and keep what is newer than the copy."""
        pools = await self.bus.request(Envelope.wrap(ListPools()), timeout=self.timeout)
        volumes = await self.bus.request(Envelope.wrap(ListVolumes(include_expunged=True)), timeout=self.timeout)
        if not isinstance(pools.payload, PoolsListed) or not isinstance(volumes.payload, VolumesListed):
            raise StrataError(f"the storage service answered {pools.type} and {volumes.type}")
        async with self.units.begin(CONSUMER, None) as uow:
            assert uow is not None  # no incoming message: never a duplicate
            for pool in pools.payload.pools:
                repo.upsert_pool(uow, repo.PoolRow(pool.pool_id, pool.plugin, pool.scope, pool.cluster_id, pool.host))
            for volume in volumes.payload.volumes:
                report = repo.VolumeReport(
                    volume.volume_id,
                    volume.state,
                    volume.entity_version,
                    volumes.occurred_at,
                    size_bytes=volume.size_bytes,
                    pool_id=volume.pool_id,
                    vm_id=volume.vm_id,
                )
                repo.apply_volume(uow, report)
        log.info(
            "caught up with the storage service", pools=len(pools.payload.pools), volumes=len(volumes.payload.volumes)
        )

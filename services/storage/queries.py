"""Answers to `pool.list` and `volume.list` over request/reply (`strata pool list|show`, `strata volume list|show`)."""

from bus.ports import UnitOfWork
from schemas import Envelope
from schemas.storage_queries import ListPools, ListVolumes, PoolsListed, VolumesListed
from services.storage import repository
from services.storage.context import Storage


async def list_pools(query: ListPools, envelope: Envelope, uow: UnitOfWork, storage: Storage) -> PoolsListed:
    """The pools (one with `pool_id`), without their configuration."""
    pools = await repository.list_pools(uow.connection, pool_id=query.pool_id, include_removed=query.include_removed)
    return PoolsListed(pools=tuple(pool.info() for pool in pools))


async def list_volumes(query: ListVolumes, envelope: Envelope, uow: UnitOfWork, storage: Storage) -> VolumesListed:
    """The volumes, filtered by id, pool or VM."""
    volumes = await repository.list_volumes(
        uow.connection,
        volume_id=query.volume_id,
        pool_id=query.pool_id,
        vm_id=query.vm_id,
        include_expunged=query.include_expunged,
    )
    return VolumesListed(volumes=tuple(volume.info() for volume in volumes))

"""Volume resize: Ready -> Resizing, an agent changes the size on the pool, Resizing -> Ready. Growing is checked
against the pool's room (over-provisioning); shrinking needs a plugin with the `shrink` capability and the
requester's explicit `allow_shrink`, and is refused otherwise, saying which."""

from dataclasses import replace

from bus.ports import UnitOfWork
from plugins.sdk.capabilities import Capability
from schemas import Envelope
from schemas.agent import ResizeVolumeOnPool, VolumeResizedOnPool, VolumeResizeOnPoolFailed
from schemas.errors import InvalidArgument, StrataError
from schemas.storage import ResizeVolume, VolumeResized, VolumeResizeFailed, VolumeState
from services.domain.volumes import VolumeEvent
from services.storage import repository
from services.storage.context import Storage, agent_route, conclude, emit, refuse, saga_request_of
from services.storage.pools import settle_maintenance
from services.storage.repository import PoolRow, VolumeRow
from services.storage.volumes import awaited, check_room, move_volume, pool_for_operation


def _check_shrink(volume: VolumeRow, pool: PoolRow, command: ResizeVolume, storage: Storage) -> None:
    """A shrink needs a plugin that can (the `shrink` capability) and the requester's explicit consent."""
    if Capability.SHRINK not in storage.plugins.get(pool.plugin).manifest.capabilities:
        raise InvalidArgument(
            f"shrinking is not supported by plugin {pool.plugin} (pool {pool.name}): its volumes only grow",
            field="new_size_bytes",
        )
    if not command.allow_shrink:
        raise InvalidArgument(
            f"volume {volume.volume_id} is {volume.size_bytes} bytes: shrinking it to {command.new_size_bytes} "
            "loses the data past the new end; ask with allow_shrink",
            field="new_size_bytes",
        )


async def resize_volume(command: ResizeVolume, envelope: Envelope, uow: UnitOfWork, storage: Storage) -> None:
    """Ready -> Resizing, and an agent changes the size on the pool."""
    try:
        volume = await repository.get_volume(uow.connection, command.volume_id)
        pool = await pool_for_operation(uow, volume)
        if command.new_size_bytes < volume.size_bytes:
            _check_shrink(volume, pool, command, storage)
        if command.new_size_bytes > volume.size_bytes:
            check_room(pool, command.new_size_bytes - volume.size_bytes, storage)
        volume = replace(volume, requested_size_bytes=command.new_size_bytes, saga_request=saga_request_of(envelope))
        await move_volume(uow, envelope, storage, volume, VolumeEvent.RESIZE_REQUESTED)
    except StrataError as error:
        refuse(uow, envelope, error, VolumeResizeFailed(volume_id=command.volume_id, error=error.info()), storage)
        return
    route = agent_route(pool)
    on_pool = ResizeVolumeOnPool(
        pool_id=pool.pool_id,
        volume_id=volume.volume_id,
        new_size_bytes=command.new_size_bytes,
        allow_shrink=command.allow_shrink,
        host=route[0],
        cluster_id=route[1],
    )
    emit(uow, envelope, on_pool, storage)


async def volume_resized(event: VolumeResizedOnPool, envelope: Envelope, uow: UnitOfWork, storage: Storage) -> None:
    """The agent resized it: Resizing -> Ready with the new size, `volume.resized`."""
    volume = await awaited(uow, envelope, event.volume_id, VolumeState.RESIZING)
    if volume is None:
        return
    resized = replace(volume, size_bytes=event.new_size_bytes, requested_size_bytes=None, saga_request=None)
    ready = await move_volume(uow, envelope, storage, resized, VolumeEvent.OPERATION_SUCCEEDED)
    changed = VolumeResized(
        volume_id=volume.volume_id,
        old_size_bytes=volume.size_bytes,
        new_size_bytes=event.new_size_bytes,
        entity_version=ready.version,
    )
    conclude(uow, envelope, volume.saga_request, changed, storage)
    await settle_maintenance(uow, envelope, storage, volume.pool_id)


async def volume_resize_failed(
    event: VolumeResizeOnPoolFailed, envelope: Envelope, uow: UnitOfWork, storage: Storage
) -> None:
    """The agent could not resize it: Resizing -> Ready with the old size, `volume.resize.failed`."""
    volume = await awaited(uow, envelope, event.volume_id, VolumeState.RESIZING)
    if volume is None:
        return
    restored = replace(volume, requested_size_bytes=None, saga_request=None)
    await move_volume(uow, envelope, storage, restored, VolumeEvent.OPERATION_FAILED)
    failed = VolumeResizeFailed(volume_id=volume.volume_id, error=event.error)
    conclude(uow, envelope, volume.saga_request, failed, storage, failed=True)
    await settle_maintenance(uow, envelope, storage, volume.pool_id)

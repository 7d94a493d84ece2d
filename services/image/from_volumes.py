"""Templates from volumes and snapshots (import): the pool's agent copies the volume's current content, or one of its
snapshots' (qcow2), into an image
store of the zone (`agent.volume.copy_to_store`); its answer ends the store's copy DOWNLOADED, with the SHA-256 the
agent computed as it stored it, or DOWNLOAD_ERROR with its reason. The copy is leased for the agent's deadline, so
that the download worker leaves it alone; past it (an agent that never answered) the worker's checks would refuse
the volume's placeholder URL and end it DOWNLOAD_ERROR rather than leave it in progress."""

import json
from uuid import UUID

from bus.ports import UnitOfWork
from schemas import Envelope
from schemas.agent import CopyFormat, CopyVolumeToStore, StoreAccess, VolumeCopiedToStore, VolumeCopyToStoreFailed
from schemas.errors import AlreadyExists, FailedPrecondition
from schemas.image import (
    CreateImageFromVolume,
    DownloadState,
    ImageDownloaded,
    ImageDownloadFailed,
    ImageFormat,
    ImageKind,
    ImageRegistered,
    ImageRegisterFailed,
)
from services.image import repository as repo
from services.image import staging
from services.image.answering import emit, refusing
from services.image.context import ImageDeps, later_answer, lineage
from services.image.repository import CopyRow, ImageRow

COPY_DEADLINE_SECONDS = 3 * 3600.0
"""How long the agent may take to copy a volume into the store."""


async def create_image_from_volume(
    command: CreateImageFromVolume, envelope: Envelope, uow: UnitOfWork, deps: ImageDeps
) -> None:
    """Record the template in the zone's first store and have the pool's agent copy the volume into it."""

    async def body() -> None:
        connection = uow.connection
        if await repo.find_image(connection, command.image_id) is not None:
            raise AlreadyExists(f"image {command.image_id} exists", field="image_id")
        stores = await repo.zone_stores(connection, command.zone_id)
        if not stores:
            raise FailedPrecondition(
                f"zone {command.zone_id} has no image store (strata image-store add)", field="zone_id"
            )
        if await repo.image_name_taken(connection, command.zone_id, ImageKind.TEMPLATE, command.name):
            raise AlreadyExists(f"a template named {command.name!r} exists in zone {command.zone_id}", field="name")
        store = stores[0]
        row = ImageRow(
            image_id=command.image_id,
            name=command.name,
            kind=ImageKind.TEMPLATE,
            format=ImageFormat.QCOW2,
            zone_id=command.zone_id,
            url=f"snapshot:{command.snapshot_id}" if command.snapshot_id else f"volume:{command.volume_id}",
            checksum=None,
            size_bytes=None,
            virtual_size_bytes=command.size_bytes,
            deleting=False,
            request=lineage(envelope),
            created_at=envelope.occurred_at,
        )
        await repo.insert_image(connection, row, [store.store_id])
        await repo.hold_copy(connection, command.image_id, store.store_id, COPY_DEADLINE_SECONDS)
        emit(
            uow,
            envelope,
            ImageRegistered(
                image_id=row.image_id,
                name=row.name,
                kind=row.kind,
                format=row.format,
                zone_id=row.zone_id,
                store_ids=(store.store_id,),
            ),
        )
        config = json.loads(deps.sealer.open(store.sealed_config, store.store_id.bytes))
        copy = CopyVolumeToStore(
            pool_id=command.pool_id,
            volume_id=command.volume_id,
            snapshot_id=command.snapshot_id,
            store=StoreAccess(store_id=store.store_id, plugin=store.plugin, config=config),
            object_id=str(command.image_id),
            format=CopyFormat.QCOW2,
            deadline_seconds=COPY_DEADLINE_SECONDS,
            host=command.host,
            cluster_id=command.cluster_id,
        )
        emit(uow, envelope, copy)

    await refusing(
        uow, envelope, lambda error: ImageRegisterFailed(image_id=command.image_id, error=error.info()), body
    )


async def on_volume_copied(event: VolumeCopiedToStore, envelope: Envelope, uow: UnitOfWork, deps: ImageDeps) -> None:
    """The agent stored the volume: the template's copy is DOWNLOADED (other copies to stores are not ours)."""
    copy, image = await _held(uow, event.object_id, event.store_id)
    if copy is None or image is None:
        return
    await repo.finish_copy(
        uow.connection,
        copy,
        DownloadState.DOWNLOADED,
        checksum=event.checksum,
        size_bytes=event.size_bytes,
        virtual_size_bytes=image.virtual_size_bytes,
    )
    downloaded = ImageDownloaded(
        image_id=image.image_id,
        store_id=event.store_id,
        size_bytes=event.size_bytes,
        virtual_size_bytes=image.virtual_size_bytes or 0,
        checksum=event.checksum,
    )
    uow.emit(later_answer(image.request, downloaded))


async def on_volume_copy_failed(
    event: VolumeCopyToStoreFailed, envelope: Envelope, uow: UnitOfWork, deps: ImageDeps
) -> None:
    """The agent could not store the volume: DOWNLOAD_ERROR with its reason."""
    copy, image = await _held(uow, event.object_id, event.store_id)
    if copy is None or image is None:
        return
    await repo.finish_copy(uow.connection, copy, DownloadState.DOWNLOAD_ERROR, error=event.error.message)
    failed = ImageDownloadFailed(image_id=image.image_id, store_id=event.store_id, error=event.error)
    uow.emit(later_answer(image.request, failed))


async def _held(uow: UnitOfWork, object_id: str, store_id: UUID) -> tuple[CopyRow | None, ImageRow | None]:
    """The template copy an agent's answer is about, if it is still in progress here."""
    try:
        image_id = UUID(object_id)
    except ValueError:  # a copy someone else asked for (a staging copy of a migration)
        return None, None
    image = await repo.find_image(uow.connection, image_id)
    if image is None or not image.url.startswith(("volume:", "snapshot:")):
        return None, None
    copy = await repo.find_copy(uow.connection, image_id, store_id)
    if copy is None or copy.state is not DownloadState.DOWNLOAD_IN_PROGRESS:
        return None, None
    return copy, image


async def copied_to_store(event: VolumeCopiedToStore, envelope: Envelope, uow: UnitOfWork, deps: ImageDeps) -> None:
    """An agent stored a volume: a migration's staging copy (relayed to its saga) or a template from a volume."""
    await staging.relay_answer(event, envelope, uow, deps)
    await on_volume_copied(event, envelope, uow, deps)


async def copy_to_store_failed(
    event: VolumeCopyToStoreFailed, envelope: Envelope, uow: UnitOfWork, deps: ImageDeps
) -> None:
    """An agent could not store a volume: a migration's staging copy (relayed) or a template from a volume."""
    await staging.relay_answer(event, envelope, uow, deps)
    await on_volume_copy_failed(event, envelope, uow, deps)

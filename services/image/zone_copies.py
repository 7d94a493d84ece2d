"""Copies between zones: an image DOWNLOADED in one store is copied to every store of another zone. Each
destination copy is recorded NOT_DOWNLOADED with its source store; the worker fetches it from there (every chunk
verified), checks the whole file's SHA-256 against the source's record, and stores it, with the states and events
of a registration, answered to the copy command. A copy interrupted at any point is resumed by the next worker
(its lease runs out) or ends DOWNLOAD_ERROR, never half in a store."""

from bus.ports import UnitOfWork
from schemas import Envelope
from schemas.errors import FailedPrecondition, NotFound
from schemas.image import CopyImage, DownloadState, ImageCopyAccepted, ImageCopyFailed
from services.image import repository as repo
from services.image.answering import emit, refusing
from services.image.context import ImageDeps, lineage


async def copy_image(command: CopyImage, envelope: Envelope, uow: UnitOfWork, deps: ImageDeps) -> None:
    """Record the image's copies in the zone's stores that lack it; the worker copies them."""

    async def body() -> None:
        connection = uow.connection
        image = await repo.find_image(connection, command.image_id)
        if image is None or image.deleting:
            raise NotFound(f"no image {command.image_id}", field="image_id")
        copies = await repo.copies_of(connection, command.image_id)
        source = next((copy for copy, _ in copies if copy.state is DownloadState.DOWNLOADED), None)
        if source is None:
            raise FailedPrecondition(f"{image.kind.value} {image.name} is DOWNLOADED in no store yet", field="image_id")
        stores = await repo.zone_stores(connection, command.zone_id)
        if not stores:
            raise FailedPrecondition(
                f"zone {command.zone_id} has no image store (strata image-store add)", field="zone_id"
            )
        held = {copy.store_id for copy, _ in copies}
        missing = [store.store_id for store in stores if store.store_id not in held]
        if missing:
            await repo.insert_zone_copies(connection, image.image_id, source.store_id, missing, lineage(envelope))
            deps.wakeup.soon()
        accepted = ImageCopyAccepted(image_id=image.image_id, zone_id=command.zone_id, store_ids=tuple(missing))
        emit(uow, envelope, accepted)

    await refusing(uow, envelope, lambda error: ImageCopyFailed(image_id=command.image_id, error=error.info()), body)

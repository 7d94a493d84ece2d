"""Images: register from a URL (recorded NOT_DOWNLOADED in every store of the zone; the worker downloads) and
delete (accepted when no download holds it; the worker removes it from the stores and answers)."""

from uuid import UUID

from bus.ports import UnitOfWork
from schemas import Envelope
from schemas.errors import AlreadyExists, FailedPrecondition, NotFound
from schemas.image import (
    DeleteImage,
    DownloadState,
    ImageDeleteFailed,
    ImageRegistered,
    ImageRegisterFailed,
    RegisterImage,
)
from services.image import base_copies
from services.image import repository as repo
from services.image.answering import emit, refusing
from services.image.context import ImageDeps, lineage
from services.image.repository import ImageRow


async def register_image(command: RegisterImage, envelope: Envelope, uow: UnitOfWork, deps: ImageDeps) -> None:
    """Record the image NOT_DOWNLOADED in every store of its zone; the worker downloads it."""

    async def body() -> None:
        connection = uow.connection
        existing = await repo.find_image(connection, command.image_id)
        if existing is not None:
            if _registered_as(existing) != _registered_as_command(command):
                raise AlreadyExists(f"image {command.image_id} exists as another image", field="image_id")
            copies = await repo.copies_of(connection, command.image_id)
            emit(uow, envelope, _registered(existing, [copy.store_id for copy, _ in copies]))
            return
        stores = await repo.zone_stores(connection, command.zone_id)
        if not stores:
            raise FailedPrecondition(
                f"zone {command.zone_id} has no image store (strata image-store add)", field="zone_id"
            )
        if await repo.image_name_taken(connection, command.zone_id, command.kind, command.name):
            raise AlreadyExists(
                f"a {command.kind.value} named {command.name!r} exists in zone {command.zone_id}", field="name"
            )
        row = ImageRow(
            image_id=command.image_id,
            name=command.name,
            kind=command.kind,
            format=command.format,
            zone_id=command.zone_id,
            url=command.url,
            checksum=command.checksum,
            size_bytes=None,
            virtual_size_bytes=None,
            deleting=False,
            request=lineage(envelope),
            created_at=envelope.occurred_at,
        )
        store_ids = [store.store_id for store in stores]
        await repo.insert_image(connection, row, store_ids)
        emit(uow, envelope, _registered(row, store_ids))
        deps.wakeup.soon()

    await refusing(
        uow, envelope, lambda error: ImageRegisterFailed(image_id=command.image_id, error=error.info()), body
    )


def _registered_as(row: ImageRow) -> tuple[object, ...]:
    return (row.name, row.kind, row.format, row.zone_id, row.url, row.checksum)


def _registered_as_command(command: RegisterImage) -> tuple[object, ...]:
    return (command.name, command.kind, command.format, command.zone_id, command.url, command.checksum)


def _registered(row: ImageRow, store_ids: list[UUID]) -> ImageRegistered:
    return ImageRegistered(
        image_id=row.image_id,
        name=row.name,
        kind=row.kind,
        format=row.format,
        zone_id=row.zone_id,
        store_ids=tuple(store_ids),
    )


async def delete_image(command: DeleteImage, envelope: Envelope, uow: UnitOfWork, deps: ImageDeps) -> None:
    """Accept the delete of an image no download holds; the worker removes it from its stores and answers."""

    async def body() -> None:
        connection = uow.connection
        image = await repo.find_image(connection, command.image_id)
        if image is None:
            raise NotFound(f"no image {command.image_id}", field="image_id")
        copies = await repo.copies_of(connection, command.image_id)
        busy = [
            name
            for copy, name in copies
            if copy.state in (DownloadState.NOT_DOWNLOADED, DownloadState.DOWNLOAD_IN_PROGRESS)
        ]
        if busy:
            raise FailedPrecondition(
                f"image {image.name} is being downloaded to {', '.join(busy)}: delete it once that ends",
                field="image_id",
            )
        users = await base_copies.base_users(connection, command.image_id)
        if users:
            raise FailedPrecondition(
                f"{image.kind.value} {image.name} is in use by volumes: {', '.join(map(str, users))}",
                field="image_id",
            )
        await repo.mark_deleting(connection, command.image_id, lineage(envelope))
        deps.wakeup.soon()

    await refusing(uow, envelope, lambda error: ImageDeleteFailed(image_id=command.image_id, error=error.info()), body)

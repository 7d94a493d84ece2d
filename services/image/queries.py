"""Answers to `image.list` and `image.store.list` over request/reply (`strata template list|show`,
`strata image-store list`)."""

from bus.ports import UnitOfWork
from schemas import Envelope
from schemas.image_queries import (
    ImageCopyInfo,
    ImageInfo,
    ImagesListed,
    ImageStoreInfo,
    ImageStoresListed,
    ListImages,
    ListImageStores,
)
from services.image import repository as repo
from services.image.context import ImageDeps


async def list_images(query: ListImages, envelope: Envelope, uow: UnitOfWork, deps: ImageDeps) -> ImagesListed:
    """The images the query asks for, newest first, with their state in each store."""
    connection = uow.connection
    images = []
    for row in await repo.list_images(
        connection, image_id=query.image_id, kind=query.kind, zone_id=query.zone_id, limit=query.limit
    ):
        copies = tuple(
            ImageCopyInfo(
                store_id=copy.store_id,
                store_name=store_name,
                state=copy.state,
                done_bytes=copy.done_bytes,
                total_bytes=copy.total_bytes,
                attempts=copy.attempts,
                error=copy.error,
                checksum=copy.checksum,
            )
            for copy, store_name in await repo.copies_of(connection, row.image_id)
        )
        images.append(
            ImageInfo(
                image_id=row.image_id,
                name=row.name,
                kind=row.kind,
                format=row.format,
                zone_id=row.zone_id,
                url=row.url,
                checksum=row.checksum,
                size_bytes=row.size_bytes,
                virtual_size_bytes=row.virtual_size_bytes,
                deleting=row.deleting,
                created_at=row.created_at,
                copies=copies,
            )
        )
    return ImagesListed(images=tuple(images))


async def list_image_stores(
    query: ListImageStores, envelope: Envelope, uow: UnitOfWork, deps: ImageDeps
) -> ImageStoresListed:
    """The stores in use, with how many images each holds."""
    return ImageStoresListed(
        stores=tuple(
            ImageStoreInfo(
                store_id=store.store_id, name=store.name, zone_id=store.zone_id, plugin=store.plugin, images=count
            )
            for store, count in await repo.list_stores(uow.connection, query.zone_id)
        )
    )

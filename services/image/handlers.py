"""The image service's commands: add and remove image stores, register and delete images. Load, decide, record,
emit; the slow work (downloads, deletes in the stores) is the worker's, after the command's transaction committed.

Every check comes before the first write, so a refused command changes nothing; it is answered with its
`...Failed` event naming the field at fault.
"""

from collections.abc import Awaitable, Callable
from uuid import UUID

import structlog

from bus.ports import UnitOfWork
from plugins.registry import validate_config
from plugins.sdk import Role
from schemas import Envelope, Event
from schemas.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, StrataError, Transient
from schemas.image import (
    AddImageStore,
    DeleteImage,
    DownloadState,
    ImageDeleteFailed,
    ImageRegistered,
    ImageRegisterFailed,
    ImageStoreAdded,
    ImageStoreAddFailed,
    ImageStoreRemoved,
    ImageStoreRemoveFailed,
    RegisterImage,
    RemoveImageStore,
)
from services.image import repository as repo
from services.image.context import PRODUCER, ImageDeps, lineage
from services.image.repository import ImageRow, StoreRow
from services.image.wakeup import Wakeup

log = structlog.get_logger(__name__)


def emit(uow: UnitOfWork, envelope: Envelope, event: Event) -> None:
    """Answer `envelope` with `event`."""
    uow.emit(Envelope.wrap(event, cause=envelope, producer=PRODUCER))


async def refusing(
    uow: UnitOfWork, envelope: Envelope, failed: Callable[[StrataError], Event], body: Callable[[], Awaitable[None]]
) -> None:
    """Run `body`; a refusal (any strata error but Transient, raised before its first write) is answered."""
    try:
        await body()
    except Transient:
        raise
    except StrataError as error:
        log.info("image command refused", type=envelope.type, code=error.code, error=error.message)
        emit(uow, envelope, failed(error))


# ------------------------------------------------------------------------------------------------- stores


async def add_image_store(
    deps: ImageDeps, command: AddImageStore, envelope: Envelope, uow: UnitOfWork, wakeup: Wakeup
) -> None:
    """Check the plugin keeps images and the configuration is valid, then record the store (config sealed)."""

    async def body() -> None:
        connection = uow.connection
        existing = await repo.find_store(connection, command.store_id, removed=True)
        if existing is not None:
            if (existing.name, existing.zone_id, existing.plugin) != (command.name, command.zone_id, command.plugin):
                raise AlreadyExists(f"image store {command.store_id} exists as another store", field="store_id")
            emit(uow, envelope, _added(existing))
            return
        plugin = deps.plugins.get(command.plugin)
        if Role.IMAGE not in plugin.manifest.roles:
            raise InvalidArgument(f"plugin {command.plugin!r} does not keep images (no image role)", field="plugin")
        validated = validate_config(plugin, command.config)
        if await repo.store_name_taken(connection, command.zone_id, command.name):
            raise AlreadyExists(f"an image store named {command.name!r} exists in zone {command.zone_id}", field="name")
        row = StoreRow(
            command.store_id,
            command.name,
            command.zone_id,
            command.plugin,
            deps.stores.seal(command.store_id, dict(command.config)),
        )
        await repo.insert_store(connection, row, masked_config=validated.model_dump_json())
        emit(uow, envelope, _added(row))

    await refusing(
        uow, envelope, lambda error: ImageStoreAddFailed(store_id=command.store_id, error=error.info()), body
    )


def _added(row: StoreRow) -> ImageStoreAdded:
    return ImageStoreAdded(store_id=row.store_id, name=row.name, zone_id=row.zone_id, plugin=row.plugin)


async def remove_image_store(
    deps: ImageDeps, command: RemoveImageStore, envelope: Envelope, uow: UnitOfWork, wakeup: Wakeup
) -> None:
    """Stop using a store that holds no image (the images are named otherwise); removing it twice is fine."""

    async def body() -> None:
        connection = uow.connection
        if await repo.find_store(connection, command.store_id) is not None:
            held = await repo.images_in_store(connection, command.store_id)
            if held:
                raise FailedPrecondition(
                    f"image store {command.store_id} still holds images: {', '.join(held)} (delete them first)",
                    field="store_id",
                )
            await repo.remove_store(connection, command.store_id)
            await deps.stores.forget(command.store_id)
        elif await repo.find_store(connection, command.store_id, removed=True) is None:
            raise NotFound(f"no image store {command.store_id}", field="store_id")
        emit(uow, envelope, ImageStoreRemoved(store_id=command.store_id))

    await refusing(
        uow, envelope, lambda error: ImageStoreRemoveFailed(store_id=command.store_id, error=error.info()), body
    )


# ------------------------------------------------------------------------------------------------- images


async def register_image(
    deps: ImageDeps, command: RegisterImage, envelope: Envelope, uow: UnitOfWork, wakeup: Wakeup
) -> None:
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
        wakeup.soon()

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


async def delete_image(
    deps: ImageDeps, command: DeleteImage, envelope: Envelope, uow: UnitOfWork, wakeup: Wakeup
) -> None:
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
        await repo.mark_deleting(connection, command.image_id, lineage(envelope))
        wakeup.soon()

    await refusing(uow, envelope, lambda error: ImageDeleteFailed(image_id=command.image_id, error=error.info()), body)

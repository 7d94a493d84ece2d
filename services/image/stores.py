"""Image stores: add (an image-role plugin, its configuration validated and sealed) and remove (refused while the
store holds images)."""

from bus.ports import UnitOfWork
from plugins.registry import validate_config
from plugins.sdk import Role
from schemas import Envelope
from schemas.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from schemas.image import (
    AddImageStore,
    ImageStoreAdded,
    ImageStoreAddFailed,
    ImageStoreRemoved,
    ImageStoreRemoveFailed,
    RemoveImageStore,
)
from services.image import repository as repo
from services.image.answering import emit, refusing
from services.image.context import ImageDeps
from services.image.repository import StoreRow


async def add_image_store(command: AddImageStore, envelope: Envelope, uow: UnitOfWork, deps: ImageDeps) -> None:
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


async def remove_image_store(command: RemoveImageStore, envelope: Envelope, uow: UnitOfWork, deps: ImageDeps) -> None:
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

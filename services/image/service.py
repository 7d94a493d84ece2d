"""The image service's handler table: read this first.

Every handler takes the service's `ImageDeps` first and the worker's `Wakeup` last; `consumer()` binds them.
"""

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from bus.ports import Handler, QueueKind, Transport, UnitOfWorkFactory
from bus.runtime import Consumer
from schemas import Message
from schemas.image import AddImageStore, DeleteImage, RegisterImage, RemoveImageStore
from schemas.image_queries import ListImages, ListImageStores
from services.image import handlers, queries
from services.image.context import ImageDeps
from services.image.wakeup import Wakeup

CONSUMER_NAME = "image"

# A handler with the service's deps first; the message parameter is each handler's own class.
DepsHandler = Callable[..., Awaitable[Any]]

COMMAND_HANDLERS: Mapping[type[Message], DepsHandler] = {
    AddImageStore: handlers.add_image_store,
    RemoveImageStore: handlers.remove_image_store,
    RegisterImage: handlers.register_image,
    DeleteImage: handlers.delete_image,
    # queries (request/reply)
    ListImages: queries.list_images,
    ListImageStores: queries.list_image_stores,
}


def handler_table(deps: ImageDeps, wakeup: Wakeup) -> dict[type[Message], Handler]:
    """The table with `deps` and `wakeup` bound."""

    def bound(handler: DepsHandler) -> Handler:
        async def handle(message: Message, envelope: Any, uow: Any) -> Message | None:  # Any: see bus.ports.Handler
            result: Message | None = await handler(deps, message, envelope, uow, wakeup)
            return result

        return handle

    return {model: bound(handler) for model, handler in COMMAND_HANDLERS.items()}


def consumer(
    transport: Transport,
    units: UnitOfWorkFactory,
    deps: ImageDeps,
    wakeup: Wakeup,
    *,
    prefetch: int = 16,
    queue_kind: QueueKind = QueueKind.QUORUM,
) -> Consumer:
    """The service's consumer on queue `<ns>.image`."""
    return Consumer(
        transport,
        units,
        name=CONSUMER_NAME,
        handlers=handler_table(deps, wakeup),
        prefetch=prefetch,
        queue_kind=queue_kind,
    )

"""The image service's handler tables: which message goes to which handler. Read this first.

Every handler is `handler(message, envelope, uow, deps)`, the service's `ImageDeps` last; `bootstrap` binds them.
The handlers live in one module per use case: `stores`, `images`, `queries`; the slow work (downloads, deletes in
the stores) is the `worker`'s, after the handler's transaction committed.
"""

from schemas import Message
from schemas.image import AddImageStore, DeleteImage, RegisterImage, RemoveImageStore
from schemas.image_queries import ListImages, ListImageStores
from services.image import images, queries, stores
from services.image.context import ImageDeps
from services.runtime.handlers import ContextHandler

COMMAND_HANDLERS: dict[type[Message], ContextHandler[ImageDeps]] = {
    AddImageStore: stores.add_image_store,
    RemoveImageStore: stores.remove_image_store,
    RegisterImage: images.register_image,
    DeleteImage: images.delete_image,
    # queries (request/reply)
    ListImages: queries.list_images,
    ListImageStores: queries.list_image_stores,
}

# The image service follows no other service's events yet.
EVENT_HANDLERS: dict[type[Message], ContextHandler[ImageDeps]] = {}

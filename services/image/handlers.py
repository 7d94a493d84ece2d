"""The image service's handler tables: which message goes to which handler. Read this first.

Every handler is `handler(message, envelope, uow, deps)`, the service's `ImageDeps` last; `bootstrap` binds them.
The handlers live in one module per use case: `stores`, `images`, `queries`; the slow work (downloads, deletes in
the stores) is the `worker`'s, after the handler's transaction committed; `templates` makes volumes from templates.
"""

from schemas import Message
from schemas.agent import (
    VolumeCopiedToStore,
    VolumeCopyToStoreFailed,
    VolumeCreatedOnPool,
    VolumeCreateOnPoolFailed,
)
from schemas.image import (
    AddImageStore,
    CopyImage,
    CreateImageFromVolume,
    CreateVolumeFromTemplate,
    DeleteImage,
    RegisterImage,
    RemoveImageStore,
)
from schemas.image_exports import ExportImage
from schemas.image_queries import ListImages, ListImageStores
from schemas.migration import DropStagedCopy, FindStagingStore, StageVolumeIn, StageVolumeOut
from schemas.storage import VolumeDeleted
from services.image import exports, from_volumes, images, queries, staging, stores, templates, zone_copies
from services.image.context import ImageDeps
from services.runtime.handlers import ContextHandler

COMMAND_HANDLERS: dict[type[Message], ContextHandler[ImageDeps]] = {
    AddImageStore: stores.add_image_store,
    RemoveImageStore: stores.remove_image_store,
    RegisterImage: images.register_image,
    ExportImage: exports.export_image,
    DeleteImage: images.delete_image,
    CopyImage: zone_copies.copy_image,
    CreateImageFromVolume: from_volumes.create_image_from_volume,
    CreateVolumeFromTemplate: templates.create_volume_from_template,
    # queries (request/reply)
    ListImages: queries.list_images,
    ListImageStores: queries.list_image_stores,
    FindStagingStore: staging.find_staging_store,
    StageVolumeOut: staging.stage_volume_out,
    StageVolumeIn: staging.stage_volume_in,
    DropStagedCopy: staging.drop_staged_copy,
}

EVENT_HANDLERS: dict[type[Message], ContextHandler[ImageDeps]] = {
    # the volumes made on base copies (their references), from the agents and the storage service
    VolumeCreatedOnPool: templates.on_volume_created,
    VolumeCreateOnPoolFailed: templates.on_volume_create_failed,
    VolumeDeleted: templates.on_volume_deleted,
    # the agents' answers to the staging copies this service handed them (for a migration saga)
    **dict.fromkeys(staging.RELAYED, staging.relay_answer),
    # ... and of the copies that make templates from volumes
    VolumeCopiedToStore: from_volumes.copied_to_store,
    VolumeCopyToStoreFailed: from_volumes.copy_to_store_failed,
}

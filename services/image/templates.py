"""Templates into primary: a volume made from a template is made on the pool's base copy of it (one per template
and pool, made from an image store of the zone the first time, then cached), as an overlay where the pool's plugin
can (`linked_clone`) or a full copy of it. The volumes made on a base copy are its references: a template they use
cannot be deleted, and its base copies go with it once none is left.

The agent checks the base copy on the pool for every volume (and makes it again if the file is gone), so this
service's record of it is never trusted over the pool (CloudStack #14081).
"""

import json
import uuid

from bus.ports import UnitOfWork
from schemas import Envelope
from schemas.agent import (
    BaseCopy,
    CopyFormat,
    CreateVolumeOnPool,
    StoreAccess,
    VolumeCreatedOnPool,
    VolumeCreateOnPoolFailed,
)
from schemas.errors import FailedPrecondition, InvalidArgument, NotFound
from schemas.image import CreateVolumeFromTemplate, ImageFormat, ImageKind
from schemas.storage import VolumeDeleted
from services.image import base_copies
from services.image import repository as repo
from services.image.answering import emit, refusing
from services.image.base_copies import BaseCopyRow
from services.image.context import ImageDeps

BASE_COPIES = uuid.UUID("5d0c2a8e-7a43-4d4f-9c1b-6f3e8a9b2c71")
"""Base copies' volume ids are derived from (template, pool) under this namespace: the same on every retry."""


BASE_COPY_DEADLINE_SECONDS = 3 * 3600.0
"""How long the agent may take over a volume whose template it must first copy onto the pool (its consumer's
deadline for the command follows it)."""


def base_volume_id(image_id: uuid.UUID, pool_id: uuid.UUID) -> uuid.UUID:
    """The id of a template's base copy on a pool."""
    return uuid.uuid5(BASE_COPIES, f"{image_id}/{pool_id}")


async def create_volume_from_template(
    command: CreateVolumeFromTemplate, envelope: Envelope, uow: UnitOfWork, deps: ImageDeps
) -> None:
    """Send the pool's agent the volume to make on the template's base copy (the agent's answer is the outcome)."""

    async def body() -> None:
        connection = uow.connection
        image = await repo.find_image(connection, command.template_id)
        if image is None or image.deleting or image.kind is not ImageKind.TEMPLATE:
            raise NotFound(f"no template {command.template_id}", field="template_id")
        found = await base_copies.downloaded_copy(connection, image.image_id, command.zone_id)
        if found is None:
            raise FailedPrecondition(
                f"template {image.name} is not DOWNLOADED in any image store of zone {command.zone_id}",
                field="template_id",
            )
        copy, store = found
        if image.virtual_size_bytes is not None and command.size_bytes < image.virtual_size_bytes:
            raise InvalidArgument(
                f"{command.size_bytes} bytes is smaller than template {image.name}'s disk ({image.virtual_size_bytes})",
                field="size_bytes",
            )
        assert copy.checksum is not None  # recorded with DOWNLOADED
        base = BaseCopyRow(
            image.image_id,
            command.pool_id,
            base_volume_id(image.image_id, command.pool_id),
            command.host,
            command.cluster_id,
        )
        await base_copies.use_base_copy(connection, base, command.volume_id)
        config = json.loads(deps.sealer.open(store.sealed_config, store.store_id.bytes))
        on_pool = CreateVolumeOnPool(
            pool_id=command.pool_id,
            volume_id=command.volume_id,
            size_bytes=command.size_bytes,
            template_id=image.image_id,
            base=BaseCopy(
                volume_id=base.base_volume_id,
                store=StoreAccess(store_id=store.store_id, plugin=store.plugin, config=config),
                object_id=str(image.image_id),
                format=CopyFormat.RAW if image.format is ImageFormat.RAW else CopyFormat.QCOW2,
                checksum=copy.checksum,
            ),
            host=command.host,
            cluster_id=command.cluster_id,
            deadline_seconds=BASE_COPY_DEADLINE_SECONDS,
        )
        emit(uow, envelope, on_pool)

    await refusing(
        uow,
        envelope,
        lambda error: VolumeCreateOnPoolFailed(
            pool_id=command.pool_id, volume_id=command.volume_id, error=error.info()
        ),
        body,
    )


async def on_volume_created(event: VolumeCreatedOnPool, envelope: Envelope, uow: UnitOfWork, deps: ImageDeps) -> None:
    """A volume exists on its base copy: the base copy is on the pool."""
    if event.base_volume_id is not None:
        await base_copies.base_user_created(uow.connection, event.volume_id, event.base_volume_id)


async def on_volume_create_failed(
    event: VolumeCreateOnPoolFailed, envelope: Envelope, uow: UnitOfWork, deps: ImageDeps
) -> None:
    """A volume was not made: it holds no base copy."""
    await base_copies.drop_base_user(uow.connection, event.volume_id)


async def on_volume_deleted(event: VolumeDeleted, envelope: Envelope, uow: UnitOfWork, deps: ImageDeps) -> None:
    """A volume is expunged: it no longer holds its base copy (which stays cached while its template exists)."""
    await base_copies.drop_base_user(uow.connection, event.volume_id)

"""Templates and ISOs beyond registering and deleting: made from a volume or one of its snapshots, copied to another
zone's stores, exported to a URL (202 each, followed as operations), as `strata template create|copy|export` send
them. The export's URL may carry a token: it is accepted on write and never answered back."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from schemas.errors import InvalidArgument
from schemas.image import (
    CopyImage,
    CreateImageFromVolume,
    ImageCopyAccepted,
    ImageCopyFailed,
    ImageDownloaded,
    ImageDownloadFailed,
    ImageKind,
)
from schemas.image_exports import ExportImage, ImageExported, ImageExportFailed
from services.api.auth import caller, context_of
from services.api.errors import ERROR_RESPONSES
from services.api.keys import ApiKey, Role
from services.api.models import OperationOut
from services.api.routes_pools import accepted
from services.api.routes_volumes import follow
from services.cli.image_downloads import find_image
from services.cli.pool import find_pool
from services.cli.talking import invalid, zone_id
from services.cli.volume import find_volume

router = APIRouter(prefix="/api/v1", tags=["templates"], responses=ERROR_RESPONSES)
Operator = Annotated[ApiKey, Depends(caller(Role.OPERATOR))]


class FromVolumeRequest(BaseModel):
    """A template made from a volume (its VM stopped) or one of its snapshots (`strata template create`)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, description="The template's name, unique in the volume's zone.")
    volume: str = Field(min_length=1, description="The volume's id or name.")
    snapshot_id: uuid.UUID | None = Field(default=None, description="Take this snapshot's content instead.")


class CopyRequest(BaseModel):
    """Where to copy an image (`strata template copy`)."""

    model_config = ConfigDict(extra="forbid")

    zone: str = Field(min_length=1, description="The destination zone (a UUID or a name).")


class ExportRequest(BaseModel):
    """Where to send an image (`strata template export --url`)."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=1,
        max_length=4096,
        json_schema_extra={"writeOnly": True},
        description="An http(s) URL that takes a PUT (a pre-signed object URL). Never returned.",
    )


@router.post("/templates/from-volume", status_code=202, response_model=OperationOut)
async def template_from_volume(request: Request, key: Operator, body: FromVolumeRequest) -> JSONResponse:
    """The pool's agent copies the volume (or the snapshot) into an image store of its zone; the operation ends
    when the store's copy is DOWNLOADED."""
    context = context_of(request)
    client, timeout = context.asking(key), context.settings.query_timeout_seconds
    info = await find_volume(client, body.volume, timeout=timeout)
    if info.pool_id is None:
        raise InvalidArgument(f"volume {body.volume} is on no pool yet", field="volume")
    pool = await find_pool(client, str(info.pool_id), timeout=timeout)
    try:
        command = CreateImageFromVolume(
            image_id=uuid.uuid4(),
            name=body.name,
            zone_id=info.zone_id,
            volume_id=info.volume_id,
            snapshot_id=body.snapshot_id,
            pool_id=info.pool_id,
            size_bytes=info.size_bytes,
            host=pool.host,
            cluster_id=pool.cluster_id,
        )
    except ValueError as error:
        raise invalid(error) from None
    operation = await follow(
        context, key, kind="image.create_from_volume", target=body.name, command=command,
        success=ImageDownloaded, failure=ImageDownloadFailed,
    )  # fmt: skip
    return accepted(operation)


@router.post("/templates/{image}/copy", status_code=202, response_model=OperationOut)
async def copy_image(request: Request, key: Operator, image: str, body: CopyRequest) -> JSONResponse:
    """Copy a template to every image store of another zone (each verifies it against the source's SHA-256)."""
    context = context_of(request)
    info = await find_image(
        context.asking(key), image, ImageKind.TEMPLATE, timeout=context.settings.query_timeout_seconds
    )
    command = CopyImage(image_id=info.image_id, zone_id=zone_id(body.zone))
    operation = await follow(
        context, key, kind="image.copy", target=info.name, command=command,
        success=ImageCopyAccepted, failure=ImageCopyFailed,
    )  # fmt: skip
    return accepted(operation)


@router.post("/templates/{image}/export", status_code=202, response_model=OperationOut)
async def export_image(request: Request, key: Operator, image: str, body: ExportRequest) -> JSONResponse:
    """PUT the template's bytes (read from a store, every chunk verified) to the URL; the operation ends with
    their size and SHA-256."""
    context = context_of(request)
    info = await find_image(
        context.asking(key), image, ImageKind.TEMPLATE, timeout=context.settings.query_timeout_seconds
    )
    try:
        command = ExportImage(export_id=uuid.uuid4(), image_id=info.image_id, url=body.url)
    except ValueError as error:
        raise invalid(error) from None
    operation = await follow(
        context, key, kind="image.export", target=info.name, command=command,
        success=ImageExported, failure=ImageExportFailed,
    )  # fmt: skip
    return accepted(operation)

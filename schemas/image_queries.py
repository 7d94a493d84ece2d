"""Queries of the image service over request/reply (`strata template list|show`, `strata image-store list`)."""

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from schemas.envelope import Command, Event
from schemas.image import DownloadState, ImageFormat, ImageKind
from schemas.registry import message


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ImageStoreInfo(_Frozen):
    """An image store as `strata image-store list` shows it (never its configuration)."""

    store_id: UUID
    name: str
    zone_id: UUID
    plugin: str
    images: int = Field(ge=0, description="Images it holds or is downloading.")


class ImageCopyInfo(_Frozen):
    """An image's state in one store."""

    store_id: UUID
    store_name: str
    state: DownloadState
    done_bytes: int = Field(ge=0)
    total_bytes: int | None = Field(default=None, ge=0)
    attempts: int = Field(ge=0)
    error: str | None = Field(default=None, description="Why it is in DOWNLOAD_ERROR: the check that failed.")
    checksum: str | None = Field(default=None, description="`sha256:<hex>` of the stored bytes, once DOWNLOADED.")


class ImageInfo(_Frozen):
    """A template or ISO as `strata template list|show` shows it."""

    image_id: UUID
    name: str
    kind: ImageKind
    format: ImageFormat
    zone_id: UUID
    url: str
    checksum: str | None = Field(default=None, description="The checksum it was registered with.")
    size_bytes: int | None = Field(default=None, ge=0)
    virtual_size_bytes: int | None = Field(default=None, ge=0)
    deleting: bool = False
    created_at: datetime
    copies: tuple[ImageCopyInfo, ...]


@message("image.list")
class ListImages(Command):
    """A query: images (one, of a kind, of a zone), newest first."""

    image_id: UUID | None = Field(default=None, description="Only this image (`strata template show`).")
    kind: ImageKind | None = None
    zone_id: UUID | None = None
    limit: int = Field(default=500, ge=1, le=10_000)


@message("image.listed")
class ImagesListed(Event):
    """The answer to `image.list`."""

    images: tuple[ImageInfo, ...]


@message("image.store.list")
class ListImageStores(Command):
    """A query: the image stores in use (of one zone, or all)."""

    zone_id: UUID | None = None


@message("image.store.listed")
class ImageStoresListed(Event):
    """The answer to `image.store.list`."""

    stores: tuple[ImageStoreInfo, ...]

"""Messages of the image domain: image stores per zone, templates and ISOs, their downloads (the image service).

An image (a template or an ISO) is registered in a zone from a URL; every image store of the zone downloads it and
keeps CloudStack's per-store state: NOT_DOWNLOADED -> DOWNLOAD_IN_PROGRESS -> DOWNLOADED, or DOWNLOAD_ERROR with the
reason. A store's configuration travels only in `image.store.add`, marked `writeOnly` so the journal masks it.
"""

import re
from enum import StrEnum
from urllib.parse import urlsplit
from uuid import UUID

from pydantic import Field, field_validator, model_validator

from schemas.envelope import Command, Event
from schemas.errors import ErrorInfo
from schemas.registry import message
from schemas.storage import NAME_PATTERN, SECRET, PluginConfig

_CHECKSUM = re.compile(r"^(?:\{(?P<algorithm>[A-Za-z0-9-]+)\})?(?P<digest>[0-9a-fA-F]+)$")
CHECKSUM_ALGORITHMS = {"MD5": ("md5", 32), "SHA-1": ("sha1", 40), "SHA-256": ("sha256", 64), "SHA-512": ("sha512", 128)}
"""CloudStack's checksum prefixes, the hashlib name of each and its length in hex digits."""


def parse_checksum(value: str) -> tuple[str, str]:
    """CloudStack's checksum form, `{SHA-256}<hex>`, `{SHA-512}<hex>` (also `{SHA-1}`, `{MD5}`) or a bare MD5, as
    (hashlib name, lowercase hex); `ValueError` naming the accepted forms otherwise."""
    matched = _CHECKSUM.match(value.strip())
    prefix = (matched["algorithm"] or "MD5").upper() if matched else None
    known = CHECKSUM_ALGORITHMS.get(prefix) if prefix else None
    if matched is None or known is None or len(matched["digest"]) != known[1]:
        raise ValueError(
            "a checksum is {SHA-256}<64 hex>, {SHA-512}<128 hex>, {SHA-1}<40 hex> or an MD5 of 32 hex digits "
            "(CloudStack's form)"
        )
    return known[0], matched["digest"].lower()


class ImageKind(StrEnum):
    """What an image is for."""

    TEMPLATE = "template"
    """A disk image volumes are made from."""
    ISO = "iso"
    """An installation medium attached to VMs."""


class ImageFormat(StrEnum):
    """The format an image is registered with, checked with `qemu-img info` once downloaded."""

    QCOW2 = "qcow2"
    RAW = "raw"
    ISO = "iso"


class DownloadState(StrEnum):
    """An image's state in one image store (CloudStack's names)."""

    NOT_DOWNLOADED = "NOT_DOWNLOADED"
    DOWNLOAD_IN_PROGRESS = "DOWNLOAD_IN_PROGRESS"
    DOWNLOADED = "DOWNLOADED"
    DOWNLOAD_ERROR = "DOWNLOAD_ERROR"


# ---------------------------------------------------------------------------------------------- image stores


@message("image.store.add")
class AddImageStore(Command):
    """Add an image store to a zone: a plugin with the image role and its configuration."""

    store_id: UUID = Field(description="The caller's id for the store (the idempotency key).")
    name: str = Field(pattern=NAME_PATTERN, description="Operator-facing name, unique per zone.")
    zone_id: UUID = Field(description="The zone whose images it keeps.")
    plugin: str = Field(min_length=1, description="Name of the plugin that serves the store, e.g. `fsbackup`, `s3`.")
    config: PluginConfig = Field(
        repr=False,
        json_schema_extra=SECRET,
        description="The plugin's configuration, validated against its model. May hold secrets: never echoed.",
    )


@message("image.store.added")
class ImageStoreAdded(Event):
    """An image store is in use. Its configuration is deliberately absent."""

    store_id: UUID
    name: str
    zone_id: UUID
    plugin: str


@message("image.store.add.failed")
class ImageStoreAddFailed(Event):
    """An image store was refused (unknown plugin, not an image store, bad configuration, name taken)."""

    store_id: UUID
    error: ErrorInfo


@message("image.store.remove")
class RemoveImageStore(Command):
    """Stop using an image store; refused while it holds images that are not deleted."""

    store_id: UUID


@message("image.store.removed")
class ImageStoreRemoved(Event):
    """An image store is no longer used."""

    store_id: UUID


@message("image.store.remove.failed")
class ImageStoreRemoveFailed(Event):
    """An image store could not be removed (it still holds images, named in the error)."""

    store_id: UUID
    error: ErrorInfo


# ------------------------------------------------------------------------------------------ images: register


@message("image.register")
class RegisterImage(Command):
    """Register a template or ISO from a URL: every image store of the zone downloads and checks it."""

    image_id: UUID = Field(description="The caller's id for the image (the idempotency key).")
    name: str = Field(pattern=NAME_PATTERN, description="Operator-facing name, unique per zone and kind.")
    kind: ImageKind = ImageKind.TEMPLATE
    format: ImageFormat = Field(description="The image's format; the download is refused if it is another.")
    zone_id: UUID = Field(description="The zone whose image stores download it.")
    url: str = Field(max_length=2048, description="http:// or https:// URL of the image.")
    checksum: str | None = Field(
        default=None,
        description="CloudStack's form: `{SHA-256}<hex>`, `{SHA-512}<hex>`, or a bare MD5; checked after download.",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL")
        if parts.username or parts.password:
            raise ValueError("a URL with a user or password would be kept in the journal: serve the image without")
        return value

    @field_validator("checksum")
    @classmethod
    def _cloudstack_checksum(cls, value: str | None) -> str | None:
        if value is not None:
            parse_checksum(value)
        return value

    @model_validator(mode="after")
    def _format_fits_kind(self) -> "RegisterImage":
        if (self.kind is ImageKind.ISO) != (self.format is ImageFormat.ISO):
            raise ValueError("an ISO has format iso, and a template qcow2 or raw")
        return self


@message("image.registered")
class ImageRegistered(Event):
    """An image is registered; its downloads to the zone's stores have begun (NOT_DOWNLOADED in each)."""

    image_id: UUID
    name: str
    kind: ImageKind
    format: ImageFormat
    zone_id: UUID
    store_ids: tuple[UUID, ...] = Field(description="The image stores that download it.")


@message("image.register.failed")
class ImageRegisterFailed(Event):
    """An image was refused before any download (no image store in the zone, name taken, ...)."""

    image_id: UUID
    error: ErrorInfo


@message("image.download.started")
class ImageDownloadStarted(Event):
    """A store's download of an image began or resumed (DOWNLOAD_IN_PROGRESS; TEMPLATE.DOWNLOAD.START)."""

    image_id: UUID
    store_id: UUID
    attempt: int = Field(ge=1, description="1 for the first try; more after a restart or a passing failure.")


@message("image.download.progressed")
class ImageDownloadProgressed(Event):
    """How far a store's download has come (sent every second or so while it runs)."""

    image_id: UUID
    store_id: UUID
    done_bytes: int = Field(ge=0)
    total_bytes: int | None = Field(default=None, ge=0, description="None when the server did not say.")


@message("image.downloaded")
class ImageDownloaded(Event):
    """An image passed every check and is in the store (DOWNLOADED; TEMPLATE.DOWNLOAD.SUCCESS)."""

    image_id: UUID
    store_id: UUID
    size_bytes: int = Field(ge=0, description="Bytes of the image file.")
    virtual_size_bytes: int = Field(ge=0, description="The disk size a volume made from it has at least.")
    checksum: str = Field(description="`sha256:<hex>` of the image's bytes, whatever checksum it was registered with.")


@message("image.download.failed")
class ImageDownloadFailed(Event):
    """A store's download failed for good (DOWNLOAD_ERROR; TEMPLATE.DOWNLOAD.FAILED): the error names the check.

    Nothing of it is left in the store.
    """

    image_id: UUID
    store_id: UUID
    error: ErrorInfo


# -------------------------------------------------------------------------------------------- images: delete


@message("image.delete")
class DeleteImage(Command):
    """Delete an image from every store; refused while a download of it runs or volumes are based on it."""

    image_id: UUID


@message("image.deleted")
class ImageDeleted(Event):
    """An image is gone from every store."""

    image_id: UUID


@message("image.delete.failed")
class ImageDeleteFailed(Event):
    """An image could not be deleted (in use, being downloaded); it is unchanged."""

    image_id: UUID
    error: ErrorInfo


# ------------------------------------------------------------------------------------- templates into primary


@message("image.volume.create")
class CreateVolumeFromTemplate(Command):
    """Have a volume made on a pool from a template (the storage service sends it for `volume.create --template`).

    The image service sends the pool's agent `agent.volume.create` with the pool's base copy of the template (made
    from an image store of the zone if the pool lacks it); the agent's `agent.volume.created` (or `.failed`) answers,
    as it does for an empty volume. Refused here (template unknown, not DOWNLOADED in the zone, smaller size) with
    `agent.volume.create.failed`.
    """

    volume_id: UUID
    template_id: UUID
    pool_id: UUID
    zone_id: UUID = Field(description="The pool's zone: its image stores hold the template.")
    size_bytes: int = Field(gt=0, description="Virtual size in bytes; at least the template's.")
    host: str | None = Field(default=None, description="The agent route of the pool: its host ...")
    cluster_id: str | None = Field(default=None, description="... or its cluster.")


# ------------------------------------------------------------------------------------- copies between zones


@message("image.copy")
class CopyImage(Command):
    """Copy a template or ISO to every image store of another zone, from a store that has it DOWNLOADED; each
    destination store downloads it from there and verifies its checksum, with the same states as a registration."""

    image_id: UUID
    zone_id: UUID = Field(description="The destination zone.")


@message("image.copy.accepted")
class ImageCopyAccepted(Event):
    """A copy between zones began: each destination store is NOT_DOWNLOADED, then reports like a registration."""

    image_id: UUID
    zone_id: UUID
    store_ids: tuple[UUID, ...] = Field(
        description="The destination stores that download it now (none when the zone has it in every store)."
    )


@message("image.copy.failed")
class ImageCopyFailed(Event):
    """A copy between zones was refused (no DOWNLOADED source, no store in the zone, already there)."""

    image_id: UUID
    error: ErrorInfo


# ------------------------------------------------------------------------------------ templates from volumes


@message("image.create_from_volume")
class CreateImageFromVolume(Command):
    """Make a template of a volume's current content (the volume of a stopped VM): the pool's agent copies it into
    an image store of the zone; the store's copy then reports DOWNLOADED (or DOWNLOAD_ERROR) like a registration."""

    image_id: UUID = Field(description="The caller's id for the template (the idempotency key).")
    name: str = Field(pattern=NAME_PATTERN, description="Operator-facing name, unique per zone and kind.")
    zone_id: UUID
    volume_id: UUID
    snapshot_id: UUID | None = Field(
        default=None, description="Take this snapshot's content (the volume as it was) rather than the current one."
    )
    pool_id: UUID
    size_bytes: int = Field(gt=0, description="The volume's virtual size: the disk a volume made from it has.")
    host: str | None = Field(default=None, description="The agent route of the pool: its host ...")
    cluster_id: str | None = Field(default=None, description="... or its cluster.")

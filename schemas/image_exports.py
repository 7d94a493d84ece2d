"""Exports of templates and ISOs: the image service fetches an image from one of its stores (every chunk verified)
and sends it with an HTTP PUT to a URL (a pre-signed object URL, a file server, or the one-shot receiver of
`strata template export --file`). The URL may carry a token, so it is write-only: kept out of `repr` and masked in
the journal; the events name the export and the image, never the URL."""

from urllib.parse import urlsplit
from uuid import UUID

from pydantic import Field, field_validator

from schemas.envelope import Command, Event
from schemas.errors import ErrorInfo
from schemas.registry import message
from schemas.storage import SECRET


@message("image.export")
class ExportImage(Command):
    """Send an image's bytes to `url` with an HTTP PUT, from `store_id` or any store that holds it."""

    export_id: UUID = Field(description="The caller's id for the export (the idempotency key).")
    image_id: UUID
    url: str = Field(
        repr=False, json_schema_extra=SECRET, max_length=4096, description="http(s):// URL the image is PUT to."
    )
    store_id: UUID | None = Field(default=None, description="The store to read it from; None: any that holds it.")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL")
        return value


@message("image.export.progressed")
class ImageExportProgressed(Event):
    """How far an export has come (at most every second while it runs)."""

    export_id: UUID
    image_id: UUID
    done_bytes: int = Field(ge=0)
    total_bytes: int = Field(ge=0)


@message("image.exported")
class ImageExported(Event):
    """The image's bytes were accepted at the URL; `checksum` lets the receiver check what it got."""

    export_id: UUID
    image_id: UUID
    store_id: UUID
    size_bytes: int = Field(ge=0)
    checksum: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")


@message("image.export.failed")
class ImageExportFailed(Event):
    """The export was refused (no such image, no store holding it) or could not be completed."""

    export_id: UUID
    image_id: UUID
    error: ErrorInfo

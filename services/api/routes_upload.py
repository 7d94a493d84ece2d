"""A template or ISO uploaded through the API (`strata template upload NAME FILE`, the request body instead of a
local file): the body is streamed to a temporary file of the daemon's (mode 0600, in STRATA_API_UPLOAD_DIR) with
its SHA-256 computed on the way, at most STRATA_API_UPLOAD_MAX_BYTES (413 past it, nothing kept). The daemon then
serves that file as the CLI does (`services.cli.file_server`: a random path, Range answered) while every image store
of the zone downloads it and checks it against that SHA-256; the file is removed once every store's download ended,
whatever the outcome (or when the daemon stops)."""

import asyncio
import hashlib
import os
import tempfile
import uuid
from pathlib import Path
from typing import Annotated, Any, BinaryIO

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from schemas.image import (
    ImageDownloaded,
    ImageDownloadFailed,
    ImageFormat,
    ImageKind,
    ImageRegistered,
    ImageRegisterFailed,
    RegisterImage,
)
from services.api.auth import caller, context_of
from services.api.context import ApiContext
from services.api.errors import ERROR_RESPONSES, ErrorBody
from services.api.keys import ApiKey, Role
from services.api.models import OperationOut
from services.api.operations import Tracker
from services.api.routes_pools import accepted
from services.cli.file_server import serve_file
from services.cli.sending import CommandFailed
from services.cli.talking import invalid, zone_id

router = APIRouter(prefix="/api/v1", tags=["templates"], responses=ERROR_RESPONSES)
Operator = Annotated[ApiKey, Depends(caller(Role.OPERATOR))]
FLUSH = 1 << 20  # the body is written to disk a MiB at a time
BINARY_BODY = {
    "requestBody": {
        "required": True,
        "description": "The image's bytes (at most STRATA_API_UPLOAD_MAX_BYTES).",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


def too_large(limit: int) -> StarletteHTTPException:
    """The answer to a body over the limit (413, the framework's error form)."""
    return StarletteHTTPException(413, f"the upload is larger than the limit of {limit} bytes")


async def receive(request: Request, directory: Path | None, limit: int) -> tuple[Path, str, int]:
    """Stream the request's body to a new temporary file; return it, its SHA-256 and its size. Nothing is left
    behind when the body is over `limit`, empty or cut short."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    path, digest, size, pending = _new_file(directory), hashlib.sha256(), 0, bytearray()
    try:
        with path.open("wb") as file:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise too_large(limit)
                digest.update(chunk)
                pending += chunk
                if len(pending) >= FLUSH:
                    await asyncio.to_thread(_write, file, bytes(pending))
                    pending.clear()
            await asyncio.to_thread(_write, file, bytes(pending))
        if size == 0:
            raise StarletteHTTPException(400, "the upload is empty: send the image as the request's body")
    except BaseException:
        _discard(path)
        raise
    return path, digest.hexdigest(), size


def _new_file(directory: Path | None) -> Path:
    """A new empty file only this user may read (mkstemp's mode 0600), in `directory` (made if missing)."""
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix="strata-upload-", suffix=".img", dir=directory)
    os.close(handle)
    return Path(name)


def _write(file: BinaryIO, block: bytes) -> None:
    file.write(block)


def _discard(path: Path) -> None:
    """Remove the daemon's copy (at once, even while the task is being cancelled)."""
    path.unlink(missing_ok=True)


async def _downloads(
    tracker: Tracker, client: Any, registered: ImageRegistered, correlation_id: uuid.UUID, timeout: float
) -> list[ImageDownloaded | ImageDownloadFailed]:  # Any: the sending client (services.cli.sending.Client)
    """Each store's download outcome, as they arrive."""
    outcomes: dict[uuid.UUID, ImageDownloaded | ImageDownloadFailed] = {}
    deadline = asyncio.get_running_loop().time() + timeout
    while len(outcomes) < len(registered.store_ids):
        found = await client.watch.wait_for(
            correlation_id,
            (ImageDownloaded, ImageDownloadFailed),
            timeout=max(0.0, deadline - asyncio.get_running_loop().time()),
            where=lambda event: event.image_id == registered.image_id and event.store_id not in outcomes,
        )
        outcomes[found.payload.store_id] = found.payload
        tracker.operation.note("store", store_id=str(found.payload.store_id), outcome=found.type)
    return list(outcomes.values())


async def start_upload(context: ApiContext, key: ApiKey, command: RegisterImage, path: Path, size: int) -> JSONResponse:
    """Serve `path` and register it, as an operation that ends when every store's download ended; the file goes
    with it."""
    settings = context.settings

    async def work(tracker: Tracker) -> dict[str, Any]:  # Any: JSON values
        try:
            async with serve_file(path, host=settings.upload_listen) as url, context.sending(key) as client:
                envelope = await client.publish(command.model_copy(update={"url": url}))
                await tracker.sent(client, envelope, None)  # the downloads follow the registration here
                registered = await client.outcome(
                    envelope, (ImageRegistered,), (ImageRegisterFailed,), timeout=settings.query_timeout_seconds
                )
                assert isinstance(registered, ImageRegistered)
                outcomes = await _downloads(
                    tracker, client, registered, envelope.correlation_id, settings.operation_timeout_seconds
                )
        finally:
            _discard(path)
        failed = next((each for each in outcomes if isinstance(each, ImageDownloadFailed)), None)
        if failed is not None:
            raise CommandFailed(failed.error)
        return {
            "image_id": str(registered.image_id),
            "name": registered.name,
            "size_bytes": size,
            "checksum": command.checksum,
            "downloads": [each.model_dump(mode="json") for each in outcomes],
        }

    try:
        operation = await context.operations.start("image.upload", command.name, key.actor, work)
    except BaseException:
        _discard(path)
        raise
    return accepted(operation)


@router.post(
    "/templates/upload",
    status_code=202,
    response_model=OperationOut,
    openapi_extra=BINARY_BODY,
    responses={413: {"model": ErrorBody, "description": "the body is over STRATA_API_UPLOAD_MAX_BYTES"}},
)
async def upload_image(
    request: Request,
    key: Operator,
    *,
    name: Annotated[str, Query(min_length=1, max_length=128, description="The image's name, unique in its zone.")],
    kind: ImageKind = ImageKind.TEMPLATE,
    image_format: Annotated[
        ImageFormat | None, Query(alias="format", description="Its format (default: qcow2, or iso for an ISO).")
    ] = None,
    zone: Annotated[str, Query(min_length=1, max_length=128, description="The zone (a UUID or a name).")] = "default",
) -> JSONResponse:
    """Upload a template or ISO as the request's body: each image store of the zone fetches it from the daemon
    and checks it (its SHA-256, computed here, and its format); the operation ends when every store's download
    ended, and the daemon's copy is removed then."""
    context = context_of(request)
    chosen = image_format or (ImageFormat.ISO if kind is ImageKind.ISO else ImageFormat.QCOW2)
    try:  # the name, zone and format are checked before a byte is read
        command = RegisterImage(
            image_id=uuid.uuid4(),
            name=name,
            kind=kind,
            format=chosen,
            zone_id=zone_id(zone),
            url="http://127.0.0.1/",
            checksum=None,
        )
    except ValueError as error:
        raise invalid(error) from None
    settings = context.settings
    path, sha256, size = await receive(request, settings.upload_dir, settings.upload_max_bytes)
    return await start_upload(context, key, command.model_copy(update={"checksum": f"{{SHA-256}}{sha256}"}), path, size)

"""Transit copies: an image that only crosses the store (a staged migration's copy), kept apart from the images.

A transit copy lives under `transit/<id>/`, in the chunked format, with chunks of its own: it shares none with the
templates, so nothing else ever reads them, and deleting the copy is deleting its corner (no mark and sweep of the
store, whose cost grows with every image in it). Nor is it durable: its one reader checks every chunk against its
name and the chunk list against the name the copy was given, and a copy lost in a crash fails that reader, which
only undoes the migration before its switch. So its writes cost what a staging file's do, with no flush.
"""

import asyncio
import errno
import shutil
from pathlib import Path

from plugins.chunked.directory import DirectoryBlobStore
from plugins.chunked.errors import first_error
from plugins.chunked.manifest import manifest_key
from plugins.chunked.ports import BlobStore
from plugins.chunked.prefixed import prefixed
from schemas.errors import FailedPrecondition, Transient

TRANSIT_PREFIX = "transit"
_DELETES_AT_ONCE = 8


def transit_store(store: BlobStore, image_id: str) -> BlobStore:
    """The corner of `store` that holds the transit copy `image_id` (an id `check_id` accepted): on a directory, a
    store of its own that is not durable; elsewhere (an S3 bucket, whose puts are durable anyway) a prefixed view."""
    if isinstance(store, DirectoryBlobStore):
        return DirectoryBlobStore(store.root / TRANSIT_PREFIX / image_id, durable=False)
    return prefixed(store, f"{TRANSIT_PREFIX}/{image_id}")


async def delete_transit(store: BlobStore, image_id: str) -> bool:
    """Delete the transit copy `image_id` whole; says whether there was anything of it (deleting twice is fine)."""
    if isinstance(store, DirectoryBlobStore):
        return await asyncio.to_thread(_remove_tree, store.root / TRANSIT_PREFIX / image_id)
    corner = transit_store(store, image_id)
    keys = [info.key async for info in corner.list("")]
    slots = asyncio.Semaphore(_DELETES_AT_ONCE)

    async def delete(key: str) -> None:
        async with slots:
            await corner.delete(key)

    try:
        async with asyncio.TaskGroup() as tasks:
            for key in keys:
                tasks.create_task(delete(key))
    except BaseExceptionGroup as group:
        raise first_error(group) from None
    return bool(keys)


async def transit_copies(store: BlobStore) -> dict[str, bool]:
    """The transit copies the store holds, each with whether it is whole (its manifest written): what a migration
    that never cleaned up would leave (each is deleted by `delete_transit`)."""
    copies: dict[str, bool] = {}
    async for info in store.list(f"{TRANSIT_PREFIX}/"):
        parts = info.key.split("/", 2)
        if len(parts) == 3:
            copy_id = parts[1]
            copies[copy_id] = copies.get(copy_id, False) or parts[2] == manifest_key(copy_id)
    return copies


def _remove_tree(path: Path) -> bool:
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        return False
    except OSError as error:
        if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise FailedPrecondition(
                f"deleting transit copy {path.name}: the store's directory is not writable ({error.strerror})"
            ) from None
        raise Transient(f"deleting transit copy {path.name}: {error.strerror or error}") from None
    return True

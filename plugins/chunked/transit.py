"""Transit copies: an image that only crosses the store (a staged migration's copy), kept apart from the images.

A transit copy lives under `transit/<id>/`, in the chunked format, with chunks of its own: it shares none with the
templates, so nothing else ever reads them, and deleting the copy is deleting its corner (no mark and sweep of the
store, whose cost grows with every image in it). Nor is it durable: its one reader checks every chunk against its
name and the chunk list against the name the copy was given, and a copy lost in a crash fails that reader, which
only undoes the migration before its switch. So its writes cost what a staging file's do, with no flush.

On a directory, a delete moves the copy's corner aside under `transit/.deleting/` (one rename: the copy is gone)
and removes the files behind it: freeing a GiB on a filesystem mounted with online discard takes about half a
second, which the migration's clean-up need not wait for. `TransitCopies.settle` waits (the driver's `close`); what
a crash left there goes with the next delete.
"""

import asyncio
import errno
import os
import shutil
import uuid
from pathlib import Path

from plugins.chunked.directory import DirectoryBlobStore
from plugins.chunked.manifest import manifest_key
from plugins.chunked.ports import BlobStore
from plugins.chunked.prefixed import prefixed
from plugins.chunked.sweep import delete_keys
from schemas.errors import FailedPrecondition, Transient

TRANSIT_PREFIX = "transit"
_DELETING = ".deleting"


def transit_store(store: BlobStore, image_id: str) -> BlobStore:
    """The corner of `store` that holds the transit copy `image_id` (an id `check_id` accepted): on a directory, a
    store of its own that is not durable; elsewhere (an S3 bucket, whose puts are durable anyway) a prefixed view."""
    if isinstance(store, DirectoryBlobStore):
        return DirectoryBlobStore(store.root / TRANSIT_PREFIX / image_id, durable=False)
    return prefixed(store, f"{TRANSIT_PREFIX}/{image_id}")


class TransitCopies:
    """The transit copies of one store: where each lives, which there are, deleting them."""

    def __init__(self, store: BlobStore, concurrency: int) -> None:
        self.store = store
        self.concurrency = concurrency
        self._removing: set[asyncio.Future[None]] = set()

    def store_of(self, image_id: str) -> BlobStore:
        """The blob store holding the copy `image_id` (`transit_store`)."""
        return transit_store(self.store, image_id)

    async def delete(self, image_id: str) -> bool:
        """Delete the copy whole; says whether there was anything of it (deleting twice is fine)."""
        if isinstance(self.store, DirectoryBlobStore):
            corner = self.store.root / TRANSIT_PREFIX
            moved = await asyncio.to_thread(_move_aside, corner, image_id)
            if moved:
                removal = asyncio.ensure_future(asyncio.to_thread(_remove_deleted, corner / _DELETING))
                self._removing.add(removal)
                removal.add_done_callback(self._removing.discard)
            return moved
        blobs = self.store_of(image_id)
        keys = [info.key async for info in blobs.list("")]
        await delete_keys(blobs, keys, self.concurrency)
        return bool(keys)

    async def settle(self) -> None:
        """Wait until the copies deleted so far have given their space back (a failed removal is left for the next
        delete to retry)."""
        while self._removing:
            await asyncio.gather(*self._removing, return_exceptions=True)

    async def list(self) -> dict[str, bool]:
        """The copies the store holds, each with whether it is whole (its manifest written): what a migration that
        never cleaned up would leave."""
        copies: dict[str, bool] = {}
        async for info in self.store.list(f"{TRANSIT_PREFIX}/"):
            parts = info.key.split("/", 2)
            if len(parts) == 3 and parts[1] != _DELETING:
                copy_id = parts[1]
                copies[copy_id] = copies.get(copy_id, False) or parts[2] == manifest_key(copy_id)
        return copies


def _move_aside(corner: Path, image_id: str) -> bool:
    """Rename the copy's directory under `.deleting/` (a name no copy has); False if there is none."""
    try:
        (corner / _DELETING).mkdir(exist_ok=True)
        os.rename(corner / image_id, corner / _DELETING / f"{image_id}.{uuid.uuid4().hex[:8]}")
    except FileNotFoundError:
        return False
    except OSError as error:
        if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise FailedPrecondition(
                f"deleting transit copy {image_id}: the store's directory is not writable ({error.strerror})"
            ) from None
        raise Transient(f"deleting transit copy {image_id}: {error.strerror or error}") from None
    return True


def _remove_deleted(deleting: Path) -> None:
    """Remove every copy moved aside (this delete's, and any a crash left); one still held elsewhere (NFS) is left
    for the next time."""
    try:
        entries = list(deleting.iterdir())
    except FileNotFoundError:
        return
    for entry in entries:
        shutil.rmtree(entry, ignore_errors=True)

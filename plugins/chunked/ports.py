"""The one port of the chunked format: a flat key -> bytes store (a directory, an S3 bucket, ...)."""

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from plugins.chunked.codec import Stored


@dataclass(frozen=True)
class BlobInfo:
    """One stored object as a listing shows it."""

    key: str
    size: int
    modified: datetime


class BlobStore(Protocol):
    """Where the chunked format keeps its bytes. Keys are `/`-separated relative names such as `chunks/abc/abcd...`.

    Every method translates its driver's errors into `schemas.errors` classes: `NotFound` for a missing key,
    `Transient` for a failure that may pass (connection lost, storage busy), `FailedPrecondition` for a store that
    cannot be used as configured (missing bucket, access denied, read-only directory).
    """

    async def put(self, key: str, data: bytes) -> None:
        """Store `data` under `key` atomically and durably: readers see all of it or none, even after a crash."""
        ...

    async def get(self, key: str) -> bytes:
        """Return the bytes stored under `key`; raise `NotFound` if there are none."""
        ...

    async def exists(self, key: str) -> bool:
        """Tell whether `key` holds an object."""
        ...

    async def delete(self, key: str) -> None:
        """Remove `key`; a key that is already gone is not an error (deletes are retried)."""
        ...

    def list(self, prefix: str) -> AsyncIterator[BlobInfo]:
        """Yield every object whose key starts with `prefix`, in no particular order."""
        ...


@runtime_checkable
class SpaceAware(Protocol):
    """A blob store that can tell how many more bytes it can take (a directory; not an S3 bucket)."""

    async def free_bytes(self) -> int:
        """Bytes free for new blobs."""
        ...


@runtime_checkable
class LocalBlobs(Protocol):
    """A blob store on a local directory or a mount, whose objects a worker thread can read and write directly.

    The chunked format then moves a whole window of chunks per thread call instead of one event-loop round per
    chunk, and makes a backup's new chunks durable once, before its manifest, instead of with one fsync per chunk
    (at 32 KiB a chunk, 32,768 fsyncs per GiB). Both methods raise the store's errors as `put`/`get` do.
    """

    def read_into_blocking(self, key: str, parts: Sequence[memoryview]) -> int:
        """Read the object under `key` into `parts`, in order (a scatter read, from a worker thread), and return the
        bytes read: the whole object, or as much as the parts hold (give a spare part to tell a longer object);
        `NotFound` if there is none. A thread reading chunk after chunk into its own buffers then pays neither a new
        allocation nor its page faults per chunk, and a chunk lands where its bytes belong."""
        ...

    def write_new_blocking(self, key: str, data: bytes | Stored) -> bool:
        """Store `data` (one object, or parts stored one after the other) under `key` atomically unless an object is
        already there (from a worker thread); says whether it wrote. The object is not yet durable: `make_durable`
        is."""
        ...

    async def make_durable(self) -> None:
        """Make every object written so far durable (after a crash, it is there whole)."""
        ...

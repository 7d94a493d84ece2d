"""`PrefixedBlobStore`: a view of another blob store under a key prefix, so that two repositories (backups and
images) can share one directory or bucket without seeing each other's manifests or chunks."""

from collections.abc import AsyncIterator, Sequence

from plugins.chunked.codec import Stored
from plugins.chunked.ports import BlobInfo, BlobStore, LocalBlobs


class PrefixedBlobStore:
    """Every key is stored as `prefix + key` in the underlying store."""

    def __init__(self, store: BlobStore, prefix: str) -> None:
        self.store = store
        self.prefix = prefix.strip("/") + "/"

    async def put(self, key: str, data: bytes) -> None:
        """Store under the prefixed key."""
        await self.store.put(self.prefix + key, data)

    async def get(self, key: str) -> bytes:
        """Read the prefixed key."""
        return await self.store.get(self.prefix + key)

    async def exists(self, key: str) -> bool:
        """Check the prefixed key."""
        return await self.store.exists(self.prefix + key)

    async def delete(self, key: str) -> None:
        """Delete the prefixed key."""
        await self.store.delete(self.prefix + key)

    async def list(self, prefix: str) -> AsyncIterator[BlobInfo]:
        """List under the prefix, with the prefix taken off again."""
        async for info in self.store.list(self.prefix + prefix):
            yield BlobInfo(key=info.key[len(self.prefix) :], size=info.size, modified=info.modified)


class PrefixedLocalBlobStore(PrefixedBlobStore):
    """The prefixed view of a `LocalBlobs` store, itself `LocalBlobs`."""

    def __init__(self, store: BlobStore, prefix: str) -> None:
        if not isinstance(store, LocalBlobs):
            raise TypeError("a local prefixed view needs a LocalBlobs store")
        super().__init__(store, prefix)
        self.local = store

    def read_into_blocking(self, key: str, parts: Sequence[memoryview]) -> int:
        """Read the prefixed key into `parts` from a worker thread."""
        return self.local.read_into_blocking(self.prefix + key, parts)

    def write_new_blocking(self, key: str, data: bytes | Stored) -> bool:
        """Write the prefixed key, not yet durable, unless it exists."""
        return self.local.write_new_blocking(self.prefix + key, data)

    async def make_durable(self) -> None:
        """Make the underlying store's writes durable."""
        await self.local.make_durable()


def prefixed(store: BlobStore, prefix: str) -> PrefixedBlobStore:
    """A view of `store` under `prefix`, local (`LocalBlobs`) when the store is."""
    if isinstance(store, LocalBlobs):
        return PrefixedLocalBlobStore(store, prefix)
    return PrefixedBlobStore(store, prefix)

"""`MemoryBlobStore`: the blob store in a dict, for tests and for measuring what an operation writes."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime

from plugins.chunked.ports import BlobInfo
from schemas.errors import NotFound


class MemoryBlobStore:
    """Behaves like the real stores (atomic puts, idempotent deletes, NotFound) and counts the bytes put."""

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, datetime]] = {}
        self.put_log: list[tuple[str, int]] = []
        """Every put as (key, size), in order."""

    async def put(self, key: str, data: bytes) -> None:
        """Store a copy of `data` under `key`."""
        self.objects[key] = (bytes(data), datetime.now(UTC))
        self.put_log.append((key, len(data)))

    def bytes_put(self, prefix: str = "") -> int:
        """Bytes put so far under `prefix`."""
        return sum(size for key, size in self.put_log if key.startswith(prefix))

    async def get(self, key: str) -> bytes:
        """The bytes under `key`; `NotFound` if none."""
        try:
            return self.objects[key][0]
        except KeyError:
            raise NotFound(f"{key}: no such object") from None

    async def exists(self, key: str) -> bool:
        """Whether `key` holds an object."""
        return key in self.objects

    async def delete(self, key: str) -> None:
        """Remove `key` if present."""
        self.objects.pop(key, None)

    async def list(self, prefix: str) -> AsyncIterator[BlobInfo]:
        """Objects under `prefix` (a snapshot taken when the listing starts, as a paginated listing would be)."""
        snapshot = [(key, data, modified) for key, (data, modified) in self.objects.items() if key.startswith(prefix)]
        for key, data, modified in snapshot:
            yield BlobInfo(key=key, size=len(data), modified=modified)

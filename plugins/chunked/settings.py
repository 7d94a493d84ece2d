"""Tunables of a chunked repository, and the progress callback type its operations accept."""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from plugins.chunked.codec import Compression
from schemas.errors import InvalidArgument

KIB = 1024
MIB = 1024 * KIB

DEFAULT_CHUNK_SIZE = 32 * KIB
"""Why 32 KiB: an incremental backup rewrites whole chunks, so a changed extent of E bytes costs about E + C.
With guest writes in runs of 64 KiB-1 MiB, 32 KiB chunks keep written/changed near 1.05 (64 KiB: about 1.10,
4 MiB: above 3), at the price of more objects per GiB; object stores that bill per request may want 1 MiB."""

DEFAULT_REQUEST_TIMEOUT_SECONDS = 60.0
"""Deadline of one request to an object store, its retries included: a stalled endpoint fails the call past it."""

ProgressCallback = Callable[[int, int], None]
"""Called as `progress(done_bytes, total_bytes)` while an operation runs."""


@dataclass(frozen=True)
class ChunkedSettings:
    """How a repository cuts, compresses and moves chunks, and how long its safety markers live."""

    chunk_size: int = DEFAULT_CHUNK_SIZE
    compression: Compression = Compression.ZSTD
    concurrency: int = 8
    """Chunk uploads or downloads in flight at once."""
    window_bytes: int = 4 * MIB
    """Bytes of the source read, hashed and compressed per off-loop call."""
    backup_lease: timedelta = field(default=timedelta(hours=24))
    """A backup marker older than this belongs to a crashed backup and no longer holds off sweeps."""
    sweep_lease: timedelta = field(default=timedelta(hours=1))
    """A sweep marker older than this belongs to a crashed sweep and no longer holds off backups."""
    sweep_wait: timedelta = field(default=timedelta(minutes=5))
    """How long a starting backup waits for a running sweep before giving up with `Aborted`."""

    def __post_init__(self) -> None:
        if self.chunk_size < 4 * KIB or self.chunk_size > 64 * MIB or self.chunk_size % (4 * KIB):
            raise InvalidArgument(
                f"chunk size {self.chunk_size} must be a multiple of 4 KiB between 4 KiB and 64 MiB",
                field="chunk_size",
            )
        if self.concurrency < 1:
            raise InvalidArgument("concurrency must be at least 1", field="concurrency")
        if self.window_bytes < self.chunk_size:
            object.__setattr__(self, "window_bytes", self.chunk_size)

"""Opening an fsbackup driver: a `ChunkedDriver` on a `DirectoryBlobStore` rooted at the configured path."""

import asyncio
from pathlib import Path

from plugins.chunked.codec import Compression
from plugins.chunked.directory import DirectoryBlobStore
from plugins.chunked.driver import ChunkedDriver
from plugins.chunked.settings import KIB, ChunkedSettings
from plugins.fsbackup.config import FsBackupConfig
from plugins.sdk.config import PluginConfig
from plugins.sdk.errors import FailedPrecondition, InvalidArgument


def open_driver(config: PluginConfig) -> ChunkedDriver:
    """The driver for one store (no I/O until the first call)."""
    if not isinstance(config, FsBackupConfig):
        raise InvalidArgument(f"fsbackup needs an FsBackupConfig, not {type(config).__name__}")
    root = Path(config.path)

    async def root_exists() -> None:
        # Never create the root: a share that is not mounted would silently fill the host's own disk.
        if not await asyncio.to_thread(root.is_dir):
            raise FailedPrecondition(f"fsbackup: {root} is not a directory (is the share mounted?)", field="path")

    return ChunkedDriver(
        plugin_name="fsbackup",
        store=DirectoryBlobStore(root),
        settings=ChunkedSettings(
            chunk_size=config.chunk_size_kib * KIB,
            compression=Compression(config.compression),
            concurrency=config.concurrency,
        ),
        ready=root_exists,
    )

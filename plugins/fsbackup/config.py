"""The configuration of one fsbackup store, as an operator fills it in."""

from pathlib import PurePosixPath
from typing import Literal

from pydantic import Field, field_validator

from plugins.chunked.settings import DEFAULT_CHUNK_SIZE, KIB
from plugins.sdk.config import PluginConfig


class FsBackupConfig(PluginConfig):
    """Where the store lives and how it cuts and compresses chunks."""

    path: str = Field(
        description="Absolute path of the directory (or NFS mount point) that holds the store; it must exist.",
        examples=["/mnt/secondary"],
    )
    chunk_size_kib: int = Field(
        default=DEFAULT_CHUNK_SIZE // KIB,
        ge=4,
        le=65536,
        multiple_of=4,
        description="Chunk size in KiB. Small chunks make incremental backups write little more than what changed.",
    )
    compression: Literal["zstd", "zlib", "none"] = Field(default="zstd", description="Compression of chunks.")
    concurrency: int = Field(default=8, ge=1, le=64, description="Chunk writes or reads in flight at once.")

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not PurePosixPath(value).is_absolute():
            raise ValueError("must be an absolute path")
        return value

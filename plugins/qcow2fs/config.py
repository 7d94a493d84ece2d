"""qcow2fs's configuration: one pool is one directory (host scope) or one shared mount (cluster scope)."""

from pathlib import Path

from pydantic import Field, field_validator

from plugins.qcow2fs.qemu_img import DEFAULT_TIMEOUT_SECONDS
from plugins.sdk.config import IMMUTABLE, PluginConfig


class Qcow2fsConfig(PluginConfig):
    """Where the pool's qcow2 files live and how to reach qemu-img."""

    path: Path = Field(
        json_schema_extra=IMMUTABLE,
        description="Absolute path of the pool's directory (a local directory or a shared mount).",
    )
    shared: bool = Field(
        default=False,
        json_schema_extra=IMMUTABLE,
        description="The path is a shared mount seen by every host of the cluster (cluster scope); "
        "the plugin then refuses to work if nothing is mounted there.",
    )
    qemu_img: str = Field(default="qemu-img", description="The qemu-img binary to run.")
    qemu_img_timeout_seconds: float = Field(
        default=DEFAULT_TIMEOUT_SECONDS,
        gt=0,
        description="Deadline of one qemu-img call made outside an operation that has its own (an agent command's "
        "deadline governs inside one); past it qemu-img is killed and the call fails with DEADLINE_EXCEEDED.",
    )
    reserve_bytes: int = Field(
        default=0, ge=0, description="Free space always kept on the filesystem: merges that would eat into it fail."
    )

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise ValueError("must be an absolute path")
        return value

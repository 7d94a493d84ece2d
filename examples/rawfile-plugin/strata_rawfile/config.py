"""The rawfile config: what an operator fills in to add a pool."""

from pathlib import Path

from pydantic import Field, field_validator

from plugins.sdk import PluginConfig


class RawfileConfig(PluginConfig):
    """One pool: a directory on the host."""

    directory: Path = Field(description="Absolute path of the directory holding the pool's raw files.")
    preallocate: bool = Field(default=False, description="Allocate every byte at creation instead of sparse files.")

    @field_validator("directory")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise ValueError("must be an absolute path")
        return value

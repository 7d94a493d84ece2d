"""The image service's settings, from `STRATA_IMAGE_*` environment variables."""

import tempfile
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.image.context import GIB, DownloadLimits


class ImageSettings(BaseSettings):
    """Where downloads are staged and how far they may go."""

    model_config = SettingsConfigDict(env_prefix="STRATA_IMAGE_", frozen=True, extra="ignore")

    staging_dir: Path = Field(
        default=Path(tempfile.gettempdir()) / "strata-image-staging",
        description="Where downloads are kept until checked and stored (resumed from there after a restart).",
    )
    max_bytes: int = Field(default=64 * GIB, gt=0, description="The largest image file a download accepts.")
    max_virtual_bytes: int = Field(
        default=16 * 1024 * GIB, gt=0, description="The largest disk an image may describe (qemu-img's virtual size)."
    )
    stall_seconds: float = Field(default=60.0, gt=0, description="A download that receives nothing this long stalls.")
    deadline_seconds: float = Field(default=6 * 3600.0, gt=0, description="The longest one download attempt may take.")
    attempts: int = Field(default=3, ge=1, le=20, description="Attempts per download (a retry resumes).")
    lease_seconds: float = Field(
        default=30.0, gt=0, description="A download whose worker gave no news this long is taken again (resumed)."
    )
    concurrency: int = Field(default=2, ge=1, le=32, description="Downloads at once per service replica.")

    def limits(self) -> DownloadLimits:
        """The bounds of one download."""
        return DownloadLimits(
            max_bytes=self.max_bytes,
            max_virtual_bytes=self.max_virtual_bytes,
            stall_seconds=self.stall_seconds,
            deadline_seconds=self.deadline_seconds,
            attempts=self.attempts,
        )

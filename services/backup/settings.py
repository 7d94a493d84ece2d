"""The backup service's settings, from `STRATA_BACKUP_*` environment variables."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.domain.backups import DEFAULT_FULL_EVERY


class BackupSettings(BaseSettings):
    """How the backup service decides."""

    model_config = SettingsConfigDict(env_prefix="STRATA_BACKUP_", frozen=True, extra="ignore")

    full_every: int = Field(
        default=DEFAULT_FULL_EVERY,
        ge=1,
        description="`backup.full.every`: a full backup every this many backups of a volume in a repository.",
    )
    gc_interval_seconds: float = Field(
        default=86400.0,
        ge=0,
        description="Collect each repository's garbage (chunks no backup names) this often; 0: only when asked.",
    )
    verify_interval_seconds: float = Field(
        default=7 * 86400.0,
        ge=0,
        description="Re-read and check every backed-up backup this often (oldest check first); 0: only when asked.",
    )

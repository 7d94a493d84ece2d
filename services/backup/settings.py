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

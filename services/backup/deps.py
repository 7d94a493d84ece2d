"""What the backup service's handlers are given by their bootstrap (ports and settings, never adapters)."""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from plugins.registry import Registry
from services.domain.backups import DEFAULT_FULL_EVERY, FULL_EVERY_SETTING
from services.runtime.sealing import SecretSealer


@dataclass(frozen=True)
class BackupDeps:
    """Settings and ports the handlers decide with.

    Attributes:
        plugins: The installed plugins (a repository's plugin and configuration are checked against them).
        sealer: Seals repository configurations at rest with the deployment key.
        full_every: `backup.full.every`, a full backup every this many backups of a volume in a repository.
        clock: The time.
    """

    plugins: Registry
    sealer: SecretSealer
    full_every: int = DEFAULT_FULL_EVERY
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if self.full_every < 1:
            raise ValueError(f"{FULL_EVERY_SETTING} must be 1 or more")

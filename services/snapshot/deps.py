"""What the snapshot service's handlers are given by its bootstrap (ports and settings, never adapters)."""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from services.domain.chains import DELTA_MAX_SETTING

DEFAULT_DELTA_MAX = 16


@dataclass(frozen=True)
class SnapshotDeps:
    """Settings and capabilities the handlers decide with.

    Attributes:
        delta_max: `snapshot.delta.max`, the most deltas between two fulls.
        supports_delta: Whether a plugin (by name) takes delta snapshots.
        clock: The time (the scheduler and policies read it; tests may fix it).
    """

    delta_max: int = DEFAULT_DELTA_MAX
    supports_delta: Callable[[str], bool] = lambda plugin: True
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if self.delta_max < 0:
            raise ValueError(f"{DELTA_MAX_SETTING} must be 0 or more")

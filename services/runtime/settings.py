"""Settings every daemon reads from the environment (`STRATA_*`), including CloudStack's storage settings.

The CloudStack-named settings keep CloudStack's names and defaults, so that an operator recognises them:
`pool.storage.capacity.disablethreshold` is `STRATA_POOL_STORAGE_CAPACITY_DISABLETHRESHOLD`, and so on
(`cloudstack_settings()` lists them under their CloudStack names).
"""

import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic.config import JsonDict
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.domain.allocator import CapacityThresholds

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
CLOUDSTACK_NAME = "cloudstack_name"


def _cloudstack(name: str) -> JsonDict:
    return {CLOUDSTACK_NAME: name}


class RuntimeSettings(BaseSettings):
    """What every daemon needs; each field can be set as `STRATA_<FIELD>` (upper case)."""

    model_config = SettingsConfigDict(env_prefix="STRATA_", frozen=True, extra="ignore")

    database_url: SecretStr = Field(
        default=SecretStr("postgresql://postgres@127.0.0.1:5432/postgres"),
        description="PostgreSQL URL; may hold a password, so it is never shown.",
    )
    secret_key_file: Path = Field(
        default=Path("~/.config/strata/secret.key"),
        description="The deployment key that seals secrets kept at rest (pool passwords); the same file on every "
        "host. Created (mode 0600) if it does not exist.",
    )
    host: str = Field(default_factory=socket.gethostname, min_length=1, description="This machine's name.")
    log_level: LogLevel = Field(default="INFO", description="The least severe level that is logged.")
    log_json: bool = Field(default=True, description="JSON lines (for machines) or coloured text (for a terminal).")
    health_host: str = Field(default="127.0.0.1", description="Address the health and metrics server listens on.")
    health_port: int = Field(
        default=9464, ge=0, le=65535, description="Port of /healthz and /metrics; 0 picks a free one."
    )
    health_outbox_backlog_max: int = Field(
        default=10_000, ge=0, description="/healthz fails while more outbox rows than this wait to be published."
    )
    health_outbox_age_max_seconds: float = Field(
        default=300.0, gt=0, description="/healthz fails while the oldest unsent outbox row is older than this."
    )
    shutdown_grace_seconds: float = Field(
        default=30.0, gt=0, description="How long in-flight work may take to finish after a stop signal."
    )
    pool_storage_capacity_disablethreshold: float = Field(
        default=0.85,
        gt=0,
        le=1,
        description="A pool whose used/capacity is above this takes no new volumes.",
        json_schema_extra=_cloudstack("pool.storage.capacity.disablethreshold"),
    )
    pool_storage_allocated_capacity_disablethreshold: float = Field(
        default=0.85,
        gt=0,
        le=1,
        description="A pool whose (allocated + asked)/(capacity x over-provisioning) would exceed this is skipped.",
        json_schema_extra=_cloudstack("pool.storage.allocated.capacity.disablethreshold"),
    )
    storage_overprovisioning_factor: float = Field(
        default=2.0,
        ge=1,
        description="How far thin-provisioned pools may be allocated beyond their capacity.",
        json_schema_extra=_cloudstack("storage.overprovisioning.factor"),
    )
    snapshot_delta_max: int = Field(
        default=16,
        ge=0,
        description="Most delta snapshots between two full ones.",
        json_schema_extra=_cloudstack("snapshot.delta.max"),
    )
    storage_stats_interval: int = Field(
        default=60_000,
        ge=1000,
        description="Milliseconds between two collections of pool statistics.",
        json_schema_extra=_cloudstack("storage.stats.interval"),
    )

    def capacity_thresholds(self) -> CapacityThresholds:
        """The allocator's thresholds from these settings."""
        return CapacityThresholds(
            capacity_disable_threshold=self.pool_storage_capacity_disablethreshold,
            allocated_capacity_disable_threshold=self.pool_storage_allocated_capacity_disablethreshold,
            overprovisioning_factor=self.storage_overprovisioning_factor,
        )

    def cloudstack_settings(self) -> dict[str, float | int]:
        """The CloudStack-named settings under their CloudStack names, with their current values."""
        found: dict[str, float | int] = {}
        for name, field in type(self).model_fields.items():
            extra = field.json_schema_extra
            if isinstance(extra, dict) and isinstance(extra.get(CLOUDSTACK_NAME), str):
                value: float | int = getattr(self, name)
                found[str(extra[CLOUDSTACK_NAME])] = value
        return found

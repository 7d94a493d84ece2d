"""The bridge's settings, from `STRATA_BRIDGE_*` environment variables."""

from uuid import UUID

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

EXCHANGE_VARIABLE = "STRATA_BRIDGE_EXCHANGE"
"""`strata up` runs the bridge only when this names CloudStack's exchange (the demo has no CloudStack)."""


class BridgeSettings(BaseSettings):
    """Where CloudStack's event bus is and what its events leave out."""

    model_config = SettingsConfigDict(env_prefix="STRATA_BRIDGE_", frozen=True, extra="ignore")

    exchange: str = Field(
        default="cloudstack-events",
        min_length=1,
        max_length=200,
        description="CloudStack's event exchange (its RabbitMQEventBus `exchange` setting): a durable topic exchange.",
    )
    amqp_url: SecretStr | None = Field(
        default=None,
        description="The broker CloudStack publishes to, if not strata's (STRATA_AMQP_URL); may hold a password.",
    )
    prefetch: int = Field(
        default=256, ge=1, le=10_000, description="CloudStack events taken at once (in batches of up to half of it)."
    )
    volume_size_bytes: int = Field(
        default=1 << 30,
        gt=0,
        description="The size of a volume created from a VOLUME.CREATE: CloudStack's events do not carry it.",
    )
    zone_id: UUID | None = Field(
        default=None, description="The zone of a VOLUME.CREATE whose event names no DataCenter."
    )
    delivery_attempts: int = Field(
        default=5,
        ge=1,
        description="A CloudStack message that fails this many times for a reason of the bridge's own (not its "
        "content) is dead-lettered with that reason.",
    )
    reconnect_seconds: float = Field(default=2.0, gt=0, description="Wait before reconnecting to CloudStack's broker.")

"""Bus settings, read from the environment (`STRATA_*`) by services and given explicitly by tests."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from bus.ports import QueueKind


class BusSettings(BaseSettings):
    """How the bus connects, retries and paces itself. Every field can be set as `STRATA_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="STRATA_", frozen=True, extra="ignore")

    amqp_url: str = Field(default="amqp://guest:guest@127.0.0.1:5672/", description="RabbitMQ URL (holds a secret).")
    namespace: str = Field(default="strata", description="Prefix of every exchange and queue.")
    retry_delays: tuple[float, ...] = Field(
        default=(1.0, 5.0, 30.0, 120.0),
        description="Seconds a message waits at each retry level after a Transient error; its length is the "
        "number of retries before the message is dead-lettered.",
    )
    prefetch: int = Field(default=64, ge=1, description="Unsettled messages a consumer may hold at once.")
    queue_kind: QueueKind = Field(default=QueueKind.QUORUM, description="Kind of the service queues.")
    delivery_limit: int = Field(
        default=20, ge=1, description="Quorum queues dead-letter a message redelivered more often than this."
    )
    publish_outage_bound: float = Field(
        default=30.0, gt=0, description="Seconds a publish waits for the broker to come back before it fails."
    )
    confirm_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds a publish waits for the broker's confirm once written; then it fails as ConfirmTimedOut "
        "(transient: the outbox publishes it again, and inboxes absorb a duplicate).",
    )
    request_timeout: float = Field(
        default=30.0, gt=0, description="Seconds a request waits for its reply unless the caller says otherwise."
    )
    publish_window: int = Field(default=512, ge=1, description="Publishes awaiting their confirm at once.")
    handler_timeout: float = Field(
        default=3600.0,
        gt=0,
        description="Seconds a consumer lets a handler run before it cancels it (rolled back, then retried and at "
        "last dead-lettered as HandlerTimedOut); a handler may ask for more (bus.ports.handler_deadline), and so may "
        "a message that carries its own `deadline_seconds`. An hour by default because the agent's data-plane "
        "handlers (a base copy, a backup, a coalesce of a large volume) are long by nature; a process of services "
        "only, whose handlers take milliseconds, may set less.",
    )
    reconnect_delay_max: float = Field(default=5.0, gt=0, description="Longest pause between reconnect attempts.")

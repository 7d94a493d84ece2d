"""The health checks the runner registers for every daemon: the broker is reachable, the database answers, the
outbox is not backed up, each consumer consumes. Each answers True while healthy (see `health.HealthServer`)."""

from bus.ports import Transport
from bus.postgres import OutboxRelay
from bus.postgres.pool import Pool
from bus.rabbit import RabbitTransport
from bus.runtime import Consumer
from services.runtime.health import HealthCheck
from services.runtime.settings import RuntimeSettings


def broker_connected(transport: Transport) -> HealthCheck:
    """Healthy while the broker connections are up (the in-memory bus of the demo is always there)."""

    async def check() -> bool:
        return transport.connected if isinstance(transport, RabbitTransport) else True

    return check


def database_answers(pool: Pool) -> HealthCheck:
    """Healthy while the database answers a trivial query."""

    async def check() -> bool:
        async with pool.acquire() as connection:
            return bool(await connection.fetchval("SELECT 1"))

    return check


def outbox_flowing(relay: OutboxRelay, settings: RuntimeSettings) -> HealthCheck:
    """Healthy while the unsent outbox rows are no more than `health_outbox_backlog_max` and the oldest has waited
    no longer than `health_outbox_age_max_seconds` (what this process and the others emit is going out)."""

    async def check() -> bool:
        rows, oldest_seconds = await relay.backlog()
        return rows <= settings.health_outbox_backlog_max and oldest_seconds <= settings.health_outbox_age_max_seconds

    return check


def consumer_running(consumer: Consumer) -> HealthCheck:
    """Healthy while `consumer` consumes its queue."""

    async def check() -> bool:
        return consumer.running

    return check

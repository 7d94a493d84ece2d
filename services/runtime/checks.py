"""The health checks the runner registers for every daemon: the database answers, each consumer consumes."""

from bus.postgres.pool import Pool
from bus.runtime import Consumer
from services.runtime.health import HealthCheck


def database_answers(pool: Pool) -> HealthCheck:
    """Healthy while the database answers a trivial query."""

    async def check() -> bool:
        async with pool.acquire() as connection:
            return bool(await connection.fetchval("SELECT 1"))

    return check


def consumer_running(consumer: Consumer) -> HealthCheck:
    """Healthy while `consumer` consumes its queue."""

    async def check() -> bool:
        return consumer.running

    return check

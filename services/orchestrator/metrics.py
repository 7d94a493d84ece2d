"""The orchestrator's gauges, read at scrape time: saga instances by name and status (a STUCK count above zero
waits for an operator: `strata saga list --status STUCK`)."""

from prometheus_client import CollectorRegistry, Gauge

from bus.postgres.pool import Pool
from sagas.postgres_store import DEFAULT_SCHEMA


class SagaMetrics:
    """`strata_sagas{name, status}`: how many saga instances are in each status."""

    def __init__(self, registry: CollectorRegistry, pool: Pool, schema: str = DEFAULT_SCHEMA) -> None:
        self._pool = pool
        self._query = f"SELECT name, status, count(*) AS sagas FROM {schema}.instances GROUP BY name, status"
        self._sagas = Gauge(
            "strata_sagas", "Saga instances by saga name and status.", ["name", "status"], registry=registry
        )

    async def refresh(self) -> None:
        """Count the instances now."""
        async with self._pool.acquire() as connection:
            rows = await connection.fetch(self._query)
        self._sagas.clear()
        for row in rows:
            self._sagas.labels(row["name"], row["status"]).set(row["sagas"])

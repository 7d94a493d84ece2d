"""The storage daemon's gauges, read at scrape time: each pool's capacity, use and allocation (as the allocator
sees them), labelled by pool id, name and state."""

from prometheus_client import CollectorRegistry, Gauge

from bus.postgres.pool import Pool
from services.storage import repository

_LABELS = ["pool", "name", "state"]


class PoolMetrics:
    """`strata_pool_capacity_bytes`, `strata_pool_used_bytes`, `strata_pool_allocated_bytes` and
    `strata_pool_volumes` of every pool not Removed."""

    def __init__(self, registry: CollectorRegistry, pool: Pool) -> None:
        self._pool = pool
        self._capacity = Gauge("strata_pool_capacity_bytes", "A pool's capacity.", _LABELS, registry=registry)
        self._used = Gauge(
            "strata_pool_used_bytes", "A pool's bytes in use, as its plugin reports.", _LABELS, registry=registry
        )
        self._allocated = Gauge(
            "strata_pool_allocated_bytes", "The sizes of a pool's volumes added up.", _LABELS, registry=registry
        )
        self._volumes = Gauge("strata_pool_volumes", "Volumes on a pool.", _LABELS, registry=registry)

    async def refresh(self) -> None:
        """Read every pool now (a pool gone since the last scrape disappears)."""
        async with self._pool.acquire() as connection:
            pools = await repository.list_pools(connection)
        gauges = (self._capacity, self._used, self._allocated, self._volumes)
        for gauge in gauges:
            gauge.clear()
        for row in pools:
            labels = (str(row.pool_id), row.name, row.state.value)
            self._capacity.labels(*labels).set(row.capacity_bytes)
            self._used.labels(*labels).set(row.used_bytes)
            self._allocated.labels(*labels).set(row.allocated_bytes)
            self._volumes.labels(*labels).set(row.volumes)

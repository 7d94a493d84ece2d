"""The saga tables' migrations (`sagas/migrations/NNNN_*.sql`), applied by the bus's migrator: once each, in
order, under an advisory lock, an edited migration refused."""

from bus.postgres.migrate import migrate
from bus.postgres.pool import PoolConnection
from sagas.postgres_store import DEFAULT_SCHEMA


async def migrate_sagas(connection: PoolConnection, schema: str = DEFAULT_SCHEMA) -> list[int]:
    """Create or upgrade the saga tables in `schema`; return the versions applied now."""
    return await migrate(connection, schema, source="sagas.migrations")

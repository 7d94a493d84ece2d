"""Per-service SQL migrations: each service owns a PostgreSQL schema and applies its numbered SQL files once.

A service keeps `NNNN_what.sql` files in its `migrations` package (e.g. `services.storage.migrations`) and writes
`__SCHEMA__` where its schema name goes. Applied versions are recorded in `<schema>.schema_migrations` with a
checksum, so running again changes nothing and an edited migration is refused. All pending files apply in one
transaction (all or nothing), and migrators of the same schema (replicas starting together) take turns on an
advisory lock. The migrator itself is the bus's (`bus.postgres.migrate`), so every schema is migrated alike.
"""

from importlib.resources.abc import Traversable

import asyncpg

from bus.postgres.errors import translated_errors
from bus.postgres.migrate import apply_migrations, load_migrations, validate_schema


async def migrate_service(
    connection: "asyncpg.Connection[asyncpg.Record]", schema: str, source: str | Traversable
) -> list[int]:
    """Apply the migrations of `source` not yet applied to `schema`; return the versions applied now."""
    return await apply_migrations(connection, schema, load_migrations(source, schema))


async def migrate_service_at(database_url: str, schema: str, source: str | Traversable) -> list[int]:
    """Connect to `database_url`, migrate `schema`, and disconnect (for a daemon's bootstrap)."""
    with translated_errors():
        connection = await asyncpg.connect(database_url)
    try:
        return await migrate_service(connection, schema, source)
    finally:
        with translated_errors():
            await connection.close()


async def applied_versions(connection: "asyncpg.Connection[asyncpg.Record]", schema: str) -> list[int]:
    """The versions recorded as applied in `schema` (empty if it was never migrated)."""
    validate_schema(schema)
    with translated_errors():
        exists = await connection.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{schema}.schema_migrations")
        if not exists:
            return []
        rows = await connection.fetch(f"SELECT version FROM {schema}.schema_migrations ORDER BY version")
    return [row["version"] for row in rows]

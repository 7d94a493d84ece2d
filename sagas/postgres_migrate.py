"""The saga tables' migrator: applies `sagas/migrations/NNNN_*.sql` once each, in order, under an advisory lock.

Applied versions are recorded with a checksum in `<schema>.schema_migrations`, so running it again changes
nothing and an edited migration is refused rather than silently diverging (the same rules as the bus tables).
"""

import hashlib
import re
from importlib import resources

from bus.postgres.errors import translated_errors
from bus.postgres.migrate import validate_schema
from bus.postgres.pool import PoolConnection
from sagas.postgres_store import DEFAULT_SCHEMA
from schemas import FailedPrecondition

_MIGRATION_FILE = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")


async def migrate_sagas(connection: PoolConnection, schema: str = DEFAULT_SCHEMA) -> list[int]:
    """Create or upgrade the saga tables in `schema`; return the versions applied now."""
    validate_schema(schema)
    migrations = []
    for entry in resources.files("sagas.migrations").iterdir():
        match = _MIGRATION_FILE.fullmatch(entry.name)
        if match:
            sql = entry.read_text(encoding="utf-8").replace("__SCHEMA__", schema)
            migrations.append((int(match.group(1)), match.group(2), sql))
    migrations.sort()
    applied: list[int] = []
    with translated_errors():
        async with connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"strata.migrate.{schema}")
            await connection.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            await connection.execute(
                f"CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (version integer PRIMARY KEY, "
                "name text NOT NULL, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            rows = await connection.fetch(f"SELECT version, checksum FROM {schema}.schema_migrations")
            recorded = {row["version"]: row["checksum"] for row in rows}
            for version, name, sql in migrations:
                checksum = hashlib.sha256(sql.encode()).hexdigest()
                if version in recorded:
                    if recorded[version] != checksum:
                        raise FailedPrecondition(
                            f"migration {version:04d}_{name} of schema {schema} changed after it was applied"
                        )
                    continue
                await connection.execute(sql)
                await connection.execute(
                    f"INSERT INTO {schema}.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    version,
                    name,
                    checksum,
                )
                applied.append(version)
    return applied

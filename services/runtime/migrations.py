"""Per-service SQL migrations: each service owns a PostgreSQL schema and applies its numbered SQL files once.

A service keeps `NNNN_what.sql` files in its `migrations` package (e.g. `services.storage.migrations`) and writes
`__SCHEMA__` where its schema name goes. Applied versions are recorded in `<schema>.schema_migrations` with a
checksum, so running again changes nothing and an edited migration is refused. All pending files apply in one
transaction (all or nothing), and migrators of the same schema (replicas starting together) take turns on an
advisory lock. The record table and the lock are the bus migrator's, so both kinds of schema look alike.
"""

import re
from importlib import resources
from importlib.resources.abc import Traversable

import asyncpg

from bus.postgres.errors import translated_errors
from bus.postgres.migrate import Migration, validate_schema
from schemas.errors import FailedPrecondition, InvalidArgument

_MIGRATION_FILE = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")
_SCHEMA_TOKEN = "__SCHEMA__"  # noqa: S105  (a placeholder in the SQL files, not a password)


def load_migrations(source: str | Traversable, schema: str) -> list[Migration]:
    """Read the SQL files of a package (by dotted name) or directory, in version order, written for `schema`."""
    validate_schema(schema)
    folder = resources.files(source) if isinstance(source, str) else source
    found: dict[int, Migration] = {}
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _MIGRATION_FILE.fullmatch(entry.name)
        if match is None:
            raise InvalidArgument(
                f"migration file {entry.name!r} must be named NNNN_lower_case_name.sql (e.g. 0001_pools.sql)",
                field="migrations",
            )
        version = int(match.group(1))
        if version in found:
            raise InvalidArgument(
                f"migrations {found[version].name} and {match.group(2)} share version {version:04d}",
                field="migrations",
            )
        sql = entry.read_text(encoding="utf-8").replace(_SCHEMA_TOKEN, schema)
        found[version] = Migration(version, match.group(2), sql)
    return [found[version] for version in sorted(found)]


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


async def apply_migrations(
    connection: "asyncpg.Connection[asyncpg.Record]", schema: str, migrations: list[Migration]
) -> list[int]:
    """Apply `migrations` not yet recorded in `schema`, in one transaction; return the versions applied now."""
    validate_schema(schema)
    applied_now: list[int] = []
    with translated_errors():
        async with connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"strata.migrate.{schema}")
            await connection.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            await connection.execute(
                f"""CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
                    version integer PRIMARY KEY,
                    name text NOT NULL,
                    checksum text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            rows = await connection.fetch(f"SELECT version, checksum FROM {schema}.schema_migrations")
            recorded = {row["version"]: row["checksum"] for row in rows}
            for migration in migrations:
                if migration.version in recorded:
                    if recorded[migration.version] != migration.checksum:
                        raise FailedPrecondition(
                            f"migration {migration.version:04d}_{migration.name} of schema {schema} was changed "
                            "after it was applied; add a new migration instead of editing an applied one"
                        )
                    continue
                await connection.execute(migration.sql)
                await connection.execute(
                    f"INSERT INTO {schema}.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
                applied_now.append(migration.version)
    return applied_now


async def applied_versions(connection: "asyncpg.Connection[asyncpg.Record]", schema: str) -> list[int]:
    """The versions recorded as applied in `schema` (empty if it was never migrated)."""
    validate_schema(schema)
    with translated_errors():
        exists = await connection.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{schema}.schema_migrations")
        if not exists:
            return []
        rows = await connection.fetch(f"SELECT version FROM {schema}.schema_migrations ORDER BY version")
    return [row["version"] for row in rows]

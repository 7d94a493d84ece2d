"""The migrator: applies the numbered SQL files of `bus/postgres/migrations` once each, in order.

Applied versions are recorded in `<schema>.schema_migrations` with a checksum, so that running it again changes
nothing and an edited migration is refused instead of silently diverging. Concurrent migrators (several daemons
starting together) serialize on an advisory lock.
"""

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

from bus.postgres.errors import translated_errors
from bus.postgres.pool import PoolConnection
from schemas.errors import FailedPrecondition, InvalidArgument

DEFAULT_SCHEMA = "bus"
BUS_MIGRATIONS = "bus.postgres.migrations"
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_MIGRATION_FILE = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")
_SCHEMA_TOKEN = "__SCHEMA__"  # noqa: S105  (a placeholder in the SQL files, not a password)


@dataclass(frozen=True, slots=True)
class Migration:
    """One SQL file: its version (the number it starts with), name and text for a given schema."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def validate_schema(schema: str) -> str:
    """Return `schema` if it is a plain lower-case identifier (it is spliced into SQL), else raise."""
    if not _SCHEMA_NAME.fullmatch(schema):
        raise InvalidArgument(
            f"schema name {schema!r} must be lower-case letters, digits and underscores, starting with a letter",
            field="schema",
        )
    return schema


def load_migrations(schema: str = DEFAULT_SCHEMA, package: str = BUS_MIGRATIONS) -> list[Migration]:
    """Read the migrations shipped in `package` (`NNNN_name.sql` files), in version order, written for `schema`."""
    validate_schema(schema)
    found: list[Migration] = []
    for entry in resources.files(package).iterdir():
        match = _MIGRATION_FILE.fullmatch(entry.name)
        if match:
            sql = entry.read_text(encoding="utf-8").replace(_SCHEMA_TOKEN, schema)
            found.append(Migration(int(match.group(1)), match.group(2), sql))
    found.sort(key=lambda migration: migration.version)
    return found


async def migrate(
    connection: "asyncpg.Connection[asyncpg.Record] | PoolConnection", schema: str = DEFAULT_SCHEMA
) -> list[int]:
    """Apply the migrations not yet applied to `schema`; return the versions applied now (empty if none)."""
    migrations = load_migrations(schema)
    applied_now: list[int] = []
    with translated_errors():
        async with connection.transaction():
            # One lock per schema name; held to the end of the transaction, so migrators run one after another.
            await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"strata.migrate.{schema}")
            await connection.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            await connection.execute(
                f"""CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
                    version integer PRIMARY KEY,
                    name text NOT NULL,
                    checksum text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            rows = await connection.fetch(f"SELECT version, name, checksum FROM {schema}.schema_migrations")
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

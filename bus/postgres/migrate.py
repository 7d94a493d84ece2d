"""The migrator: applies numbered SQL files once each, in order — the bus's own, the saga store's and each service's.

Applied versions are recorded in `<schema>.schema_migrations` with a checksum, so that running it again changes
nothing and an edited migration is refused instead of silently diverging. Concurrent migrators (several daemons
starting together) serialize on an advisory lock.
"""

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

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


def load_migrations(source: str | Traversable, schema: str) -> list[Migration]:
    """Read the `NNNN_name.sql` files of a package (dotted name) or directory, in version order, for `schema`."""
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


async def migrate(
    connection: "asyncpg.Connection[asyncpg.Record] | PoolConnection",
    schema: str = DEFAULT_SCHEMA,
    source: str | Traversable = BUS_MIGRATIONS,
) -> list[int]:
    """Apply the migrations of `source` (the bus's by default) not yet applied to `schema`; return those applied."""
    return await apply_migrations(connection, schema, load_migrations(source, schema))


async def apply_migrations(
    connection: "asyncpg.Connection[asyncpg.Record] | PoolConnection", schema: str, migrations: list[Migration]
) -> list[int]:
    """Apply `migrations` not yet recorded in `schema`, all in one transaction; return the versions applied now."""
    validate_schema(schema)
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

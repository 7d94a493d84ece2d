"""Apply the service's SQL migrations in schema `snapshot`, each once, recorded in `snapshot.schema_migrations`.

A small runner of its own until the shared one in services/runtime lands; the files are plain SQL in
`migrations/NNNN_name.sql`, applied in order, each in its own transaction under an advisory lock so that two
replicas starting together do not race.
"""

from importlib import resources
from typing import Any

SCHEMA = "snapshot"
_LOCK_KEY = 0x534E4150  # "SNAP": one advisory lock key for this service's migrations


def _migrations() -> list[tuple[int, str, str]]:
    found = []
    for entry in resources.files("services.snapshot.migrations").iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.name, entry.read_text()))
    return sorted(found)


async def migrate_snapshot(connection: Any) -> list[int]:  # an asyncpg connection
    """Bring schema `snapshot` up to date; return the versions applied now."""
    applied_now: list[int] = []
    await connection.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await connection.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        await connection.execute(
            f"CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_migrations "
            "(version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row["version"] for row in await connection.fetch(f"SELECT version FROM {SCHEMA}.schema_migrations")}
        for version, name, sql in _migrations():
            if version in done:
                continue
            async with connection.transaction():
                await connection.execute(sql)
                await connection.execute(
                    f"INSERT INTO {SCHEMA}.schema_migrations (version, name) VALUES ($1, $2)", version, name
                )
            applied_now.append(version)
    finally:
        await connection.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied_now

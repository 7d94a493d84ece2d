"""Creates the agent's schema and tables (`migrations/*.sql`, each idempotent), one migrator at a time."""

from importlib.resources import files
from typing import Any

from services.agent.repository import SCHEMA


async def migrate_agent(connection: Any) -> None:  # an asyncpg connection outside any transaction
    """Apply the agent's SQL files in order, under an advisory lock so that agents starting together wait."""
    scripts = sorted(
        (entry for entry in files("services.agent.migrations").iterdir() if entry.name.endswith(".sql")),
        key=lambda entry: entry.name,
    )
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"strata.migrate.{SCHEMA}")
        await connection.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        for script in scripts:
            await connection.execute(script.read_text())

"""Creates and upgrades the agent's schema (`migrations/*.sql`) with the services' migration runner."""

from typing import Any

from services.agent.repository import SCHEMA
from services.runtime.migrations import migrate_service


async def migrate_agent(connection: Any) -> list[int]:  # an asyncpg connection outside any transaction
    """Apply the agent's migrations not yet applied; return the versions applied now."""
    return await migrate_service(connection, SCHEMA, "services.agent.migrations")

"""Creates and upgrades the storage service's schema (`migrations/*.sql`) with the services' migration runner."""

from typing import Any

from services.runtime.migrations import migrate_service
from services.storage.repository import SCHEMA


async def migrate_storage(connection: Any) -> list[int]:  # an asyncpg connection outside any transaction
    """Apply the storage service's migrations not yet applied; return the versions applied now."""
    return await migrate_service(connection, SCHEMA, "services.storage.migrations")

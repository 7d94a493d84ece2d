"""The backup schedules as lists show them (the CLI's and the API's): a read-only look-up in the backup service's
tables, apart from `services.cli.backup_schedule` so that the API does not import the backup service's code."""

import uuid
from typing import Any


async def schedule_rows(connection: Any, volume_id: uuid.UUID | None) -> list[dict[str, Any]]:  # asyncpg; JSON
    """The backup schedules (of one volume with `volume_id`), the next to run first, as JSON values (read-only, in
    the backup service's tables: the CLI's list and the API's)."""
    rows = await connection.fetch(
        "SELECT schedule_id, volume_id, repository_id, interval_type, schedule, timezone, max_backups, "
        "keep::text AS keep, next_run_at, last_run_at FROM backup.schedules "
        "WHERE $1::uuid IS NULL OR volume_id = $1 ORDER BY next_run_at",
        volume_id,
    )
    return [
        {
            key: (
                value.isoformat()
                if hasattr(value, "isoformat")
                else str(value)
                if isinstance(value, uuid.UUID)
                else value
            )
            for key, value in dict(row).items()
        }
        for row in rows
    ]

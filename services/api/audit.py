"""The API's own changes, recorded with who made them (`api.audit`): keys created and revoked, dead letters
re-driven or purged, operators' actions on sagas. Commands sent to the services need no row here: the bus journals
them with the caller as their producer."""

import json
from typing import Any

from bus.postgres.errors import translated_errors
from bus.postgres.pool import Pool

SCHEMA = "api"


async def record(pool: Pool, actor: str, action: str, target: str, **detail: Any) -> None:  # Any: JSON values
    """Record one change (`detail` holds no secret: callers pass ids, counts and reasons)."""
    with translated_errors():
        await pool.execute(
            f"INSERT INTO {SCHEMA}.audit (actor, action, target, detail) VALUES ($1, $2, $3, $4::jsonb)",
            actor,
            action,
            target,
            json.dumps(detail, default=str),
        )


async def recent(pool: Pool, limit: int) -> list[dict[str, Any]]:  # Any: JSON values
    """The newest changes first."""
    with translated_errors():
        rows = await pool.fetch(
            f"SELECT at, actor, action, target, detail::text AS detail FROM {SCHEMA}.audit ORDER BY at DESC LIMIT $1",
            limit,
        )
    return [
        {
            "at": row["at"].isoformat(),
            "actor": row["actor"],
            "action": row["action"],
            "target": row["target"],
            "detail": json.loads(row["detail"]),
        }
        for row in rows
    ]

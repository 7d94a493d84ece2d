"""Snapshots by name for the CLI's commands: a read-only look-up in the snapshot service's tables, kept apart from
`services.cli.snapshot` so that commands of other services (and the API, which shares them) can name snapshots
without importing the snapshot service's code."""

import uuid
from typing import Any

from services.cli.talking import found_one, id_or_name, read


def snapshot_id_of(snapshot: str) -> uuid.UUID:
    """The snapshot `snapshot` names: its id as given, or the one live snapshot of that name (read-only look-up)."""
    given = id_or_name(snapshot)
    if given is not None:
        return given

    async def named(connection: Any) -> list[Any]:  # Any: asyncpg connection and records
        return list(
            await connection.fetch(
                "SELECT snapshot_id FROM snapshot.snapshots WHERE name = $1 AND state <> 'Destroyed'",
                snapshot,
            )
        )

    row = found_one(
        read(named),
        missing=f"no snapshot named {snapshot!r} (see `strata snapshot list`)",
        ambiguous=lambda count: f"{count} snapshots are named {snapshot!r} (of several volumes): give its id",
        field="snapshot",
    )
    return uuid.UUID(str(row["snapshot_id"]))

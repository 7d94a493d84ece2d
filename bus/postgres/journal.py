"""`PostgresJournal`: what happened, read back from `<schema>.journal` (written by the unit of work).

The replay tool and `strata events history` ask it by correlation id (one user operation), saga id, type and time.
Entries come back oldest first, as recorded; `to_envelope` decodes one through the registry, upcasting old versions.
"""

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from bus.postgres.errors import translated_errors
from bus.postgres.migrate import DEFAULT_SCHEMA, validate_schema
from bus.postgres.pool import Pool
from schemas import Envelope, InvalidArgument, MessageRegistry, registry

MAX_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class JournalQuery:
    """Which entries to return: every given criterion must match (`types`: any of them); at most `limit`."""

    correlation_id: UUID | None = None
    saga_id: UUID | None = None
    types: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 1000
    latest: bool = False
    """With more matches than `limit`: False keeps the oldest ones, True the newest (still returned oldest first)."""

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise InvalidArgument(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
        for name in ("since", "until"):
            moment = getattr(self, name)
            if moment is not None and moment.tzinfo is None:
                raise InvalidArgument(f"{name} must carry a time zone (e.g. 2026-01-01T00:00:00+00:00)", field=name)
        if self.since is not None and self.until is not None and self.since > self.until:
            raise InvalidArgument("since must not be after until", field="since")
        if any(not message_type.strip() for message_type in self.types):
            raise InvalidArgument("a message type must not be blank", field="types")


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One recorded message: its envelope's metadata, wire headers and payload as JSON."""

    message_id: UUID
    type: str
    version: int
    correlation_id: UUID
    causation_id: UUID | None
    saga_id: UUID | None
    step: int | None
    producer: str
    fencing_token: int | None
    occurred_at: datetime
    recorded_at: datetime
    # JSON objects as stored: their shape is the message's schema, known only to the registry.
    headers: dict[str, Any] = field(default_factory=dict)
    payload: dict[str, Any] = field(default_factory=dict)

    def to_envelope(self, messages: MessageRegistry = registry) -> Envelope:
        """Rebuild the envelope, decoding (and upcasting) the payload with `messages`."""
        payload = messages.decode(self.type, self.version, json.dumps(self.payload))
        return Envelope(
            message_id=self.message_id,
            type=payload.message_type,
            version=payload.message_version,
            occurred_at=self.occurred_at,
            correlation_id=self.correlation_id,
            causation_id=self.causation_id,
            saga_id=self.saga_id,
            step=self.step,
            producer=self.producer,
            fencing_token=self.fencing_token,
            payload=payload,
        )

    def as_json(self) -> dict[str, Any]:  # JSON values of any shape
        """The entry as a JSON-ready object (ids and times as strings)."""
        return {
            "message_id": str(self.message_id),
            "type": self.type,
            "version": self.version,
            "correlation_id": str(self.correlation_id),
            "causation_id": str(self.causation_id) if self.causation_id else None,
            "saga_id": str(self.saga_id) if self.saga_id else None,
            "step": self.step,
            "producer": self.producer,
            "fencing_token": self.fencing_token,
            "occurred_at": self.occurred_at.isoformat(),
            "recorded_at": self.recorded_at.isoformat(),
            "headers": self.headers,
            "payload": self.payload,
        }


class PostgresJournal:
    """Reads the journal of `schema` through a pool."""

    def __init__(self, pool: Pool, *, schema: str = DEFAULT_SCHEMA) -> None:
        self._pool = pool
        self._schema = validate_schema(schema)

    async def find(self, query: JournalQuery) -> list[JournalEntry]:
        """Return the entries matching `query`, oldest first (at most `query.limit`)."""
        conditions: list[str] = []
        arguments: list[object] = []

        def where(column_condition: str, value: object) -> None:
            arguments.append(value)
            conditions.append(column_condition.format(f"${len(arguments)}"))

        if query.correlation_id is not None:
            where("correlation_id = {}", query.correlation_id)
        if query.saga_id is not None:
            where("saga_id = {}", query.saga_id)
        if query.types:
            where("type = ANY({}::text[])", list(query.types))
        if query.since is not None:
            where("occurred_at >= {}", query.since)
        if query.until is not None:
            where("occurred_at <= {}", query.until)
        arguments.append(query.limit)
        direction = "DESC" if query.latest else "ASC"
        sql = (
            f"SELECT * FROM (SELECT * FROM {self._schema}.journal"
            f"{' WHERE ' + ' AND '.join(conditions) if conditions else ''}"
            f" ORDER BY occurred_at {direction}, message_id {direction} LIMIT ${len(arguments)}) AS chosen"
            " ORDER BY occurred_at, message_id"
        )
        with translated_errors():
            rows = await self._pool.fetch(sql, *arguments)
        return [_entry(row) for row in rows]

    async def by_correlation(self, correlation_id: UUID) -> list[JournalEntry]:
        """Every message of one user operation, oldest first."""
        return await self.find(JournalQuery(correlation_id=correlation_id, limit=MAX_LIMIT))

    async def by_saga(self, saga_id: UUID) -> list[JournalEntry]:
        """Every message a saga sent or received, oldest first."""
        return await self.find(JournalQuery(saga_id=saga_id, limit=MAX_LIMIT))

    async def get(self, message_id: UUID) -> JournalEntry | None:
        """The entry of one message, or None if it was never journaled."""
        with translated_errors():
            row = await self._pool.fetchrow(f"SELECT * FROM {self._schema}.journal WHERE message_id = $1", message_id)
        return None if row is None else _entry(row)


def _entry(row: asyncpg.Record) -> JournalEntry:
    return JournalEntry(
        message_id=row["message_id"],
        type=row["type"],
        version=row["version"],
        correlation_id=row["correlation_id"],
        causation_id=row["causation_id"],
        saga_id=row["saga_id"],
        step=row["step"],
        producer=row["producer"],
        fencing_token=row["fencing_token"],
        occurred_at=row["occurred_at"],
        recorded_at=row["recorded_at"],
        headers=json.loads(row["headers"]),
        payload=json.loads(row["payload"]),
    )

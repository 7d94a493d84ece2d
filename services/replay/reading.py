"""Reading a selection from the journal, a page at a time, each message decoded and its secrets masked.

A payload is decoded through the message registry (old versions lifted by its upcasters), so what is shown is the
message as today's code sees it; a payload that no longer decodes is kept with the reason, masked by name. Every
payload shown goes through `schemas.redact` (the one redaction path): by its schema, then by name.

Decoding overlaps with the database: the next page is being fetched while this one is decoded (keyset paging knows
where the next page starts as soon as this one has arrived).
"""

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from bus.postgres.errors import translated_errors
from bus.postgres.migrate import DEFAULT_SCHEMA
from bus.postgres.pool import Pool
from schemas import Envelope, InvalidArgument, Message, MessageRegistry, StrataError, registry
from schemas.redact import needs_redaction, redact, redacted
from services.replay.selection import MAX_PAGE, Cursor, Selection, select_sql

# JSON values of any shape: a payload's shape is its message's schema.
JsonObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Recorded:
    """One journaled message: its envelope's metadata, its payload decoded (or why not), its headers."""

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
    headers: JsonObject
    message: Message | None
    raw_payload: JsonObject | None = None
    """The stored payload, kept only when it does not decode (then `problem` says why)."""
    problem: str | None = None

    @property
    def service(self) -> str:
        """The producing service (a producer is `service@host`)."""
        return self.producer.split("@", 1)[0] or "(unknown)"

    @property
    def cursor(self) -> Cursor:
        """The keyset position of this message."""
        return Cursor(self.occurred_at, self.message_id)

    def payload(self) -> JsonObject:
        """The payload as JSON with every secret masked (by schema, then by name)."""
        if self.message is None:
            masked: JsonObject = redact(self.raw_payload or {})
            return masked
        return masked_payload(self.message)

    def envelope(self) -> Envelope:
        """The envelope as it travelled (payload decoded); refused for a payload that does not decode."""
        if self.message is None:
            raise StrataError(f"{self.type} v{self.version} ({self.message_id}) does not decode: {self.problem}")
        return Envelope(
            message_id=self.message_id,
            type=self.message.message_type,
            version=self.message.message_version,
            occurred_at=self.occurred_at,
            correlation_id=self.correlation_id,
            causation_id=self.causation_id,
            saga_id=self.saga_id,
            step=self.step,
            producer=self.producer,
            fencing_token=self.fencing_token,
            payload=self.message,
        )

    def as_json(self) -> JsonObject:
        """The message as a JSON-ready object, payload masked (what `--json` and an export hold)."""
        shown: JsonObject = {
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
            "headers": redact(self.headers),
            "payload": self.payload(),
        }
        if self.problem is not None:
            shown["problem"] = self.problem
        return shown


def masked_payload(message: Message) -> JsonObject:
    """A message as JSON with every secret masked: by its schema, then by name (`schemas.redact`)."""
    if needs_redaction(type(message)):
        return dict(redact(redacted(message)))
    return dict(redact(message.model_dump(mode="json")))


def decode(row: asyncpg.Record | dict[str, Any], messages: MessageRegistry = registry) -> Recorded:
    """Build a `Recorded` from a journal row (payload and headers as JSON text), decoding its payload."""
    message: Message | None = None
    raw: JsonObject | None = None
    problem: str | None = None
    try:
        message = messages.decode(row["type"], row["version"], row["payload"])
    except StrataError as error:
        problem = error.message
        raw = json.loads(row["payload"])
    headers = row["headers"]
    return Recorded(
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
        headers={} if headers in ("{}", None) else json.loads(headers),
        message=message,
        raw_payload=raw,
        problem=problem,
    )


async def _fetch(pool: Pool, sql: str, arguments: list[object]) -> list[asyncpg.Record]:
    with translated_errors():
        return await pool.fetch(sql, *arguments)


async def pages(
    pool: Pool,
    selection: Selection,
    *,
    after: Cursor | None = None,
    page_size: int = 2000,
    schema: str = DEFAULT_SCHEMA,
    messages: MessageRegistry = registry,
) -> AsyncIterator[list[Recorded]]:
    """Yield the selection a page at a time, oldest first, starting after `after`; the next page is fetched
    while the current one is decoded."""
    page_size = min(page_size, MAX_PAGE)
    sql, arguments = select_sql(selection, after=after, limit=page_size, schema=schema)
    pending: asyncio.Task[list[asyncpg.Record]] | None = asyncio.ensure_future(_fetch(pool, sql, arguments))
    try:
        while pending is not None:
            rows = await pending
            pending = None
            if len(rows) == page_size:
                last = Cursor(rows[-1]["occurred_at"], rows[-1]["message_id"])
                sql, arguments = select_sql(selection, after=last, limit=page_size, schema=schema)
                pending = asyncio.ensure_future(_fetch(pool, sql, arguments))
            yield [decode(row, messages) for row in rows]
    finally:
        if pending is not None:
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)


async def read(
    pool: Pool,
    selection: Selection,
    *,
    limit: int,
    after: Cursor | None = None,
    schema: str = DEFAULT_SCHEMA,
    messages: MessageRegistry = registry,
) -> tuple[list[Recorded], Cursor | None]:
    """At most `limit` messages of the selection after `after`, and the cursor of the next page (None: no more)."""
    if limit < 1:
        raise InvalidArgument("limit must be at least 1", field="limit")
    found: list[Recorded] = []
    async for page in pages(
        pool, selection, after=after, page_size=min(limit + 1, 2000), schema=schema, messages=messages
    ):
        found.extend(page)
        if len(found) > limit:
            break
    if len(found) > limit:
        return found[:limit], found[limit - 1].cursor
    return found, None

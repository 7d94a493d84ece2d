"""Reading a selection from the journal, a page at a time, each message decoded and its secrets masked.

A payload is decoded through the message registry (old versions lifted by its upcasters), so what is shown is the
message as today's code sees it; a payload that no longer decodes is kept with the reason, masked by name. Every
payload shown goes through `schemas.redact` (the one redaction path): by its schema, then by name.

Decoding overlaps with the database: the next page is asked for before this one is decoded, so the server produces
it meanwhile. A page is decoded with the cyclic garbage collector paused: its objects hold no cycles (reference
counting frees them), and the collector would otherwise walk the growing page dozens of times (measured: a third of
the decoding's time, bench/replay.py).
"""

import asyncio
import gc
import json
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from pydantic import ValidationError

from bus.postgres.errors import translated_errors
from bus.postgres.migrate import DEFAULT_SCHEMA
from bus.postgres.pool import Pool
from schemas import Envelope, InvalidArgument, Message, MessageRegistry, StrataError, registry
from schemas.redact import needs_redaction, redact, redacted
from services.replay.selection import Cursor, Selection, select_sql

# JSON values of any shape: a payload's shape is its message's schema.
JsonObject = dict[str, Any]


Row = tuple[Any, ...] | asyncpg.Record
"""A journal row in `select_sql`'s column order (an export's message is read into the same shape)."""


class Recorded:
    """One journaled message: its envelope's metadata, its payload decoded (or why not), its headers.

    It keeps the database's row as it came and reads its fields from it: a million messages are read per second
    or so, and copying thirteen fields into each would cost as much as decoding its payload.
    """

    __slots__ = ("message", "problem", "raw_payload", "row")

    def __init__(
        self, row: Row, message: Message | None, raw_payload: JsonObject | None = None, problem: str | None = None
    ) -> None:
        self.row = row
        self.message = message
        self.raw_payload = raw_payload
        """The stored payload, kept only when it does not decode (then `problem` says why)."""
        self.problem = problem

    @property
    def message_id(self) -> UUID:
        value: UUID = self.row[0]
        return value

    @property
    def type(self) -> str:
        value: str = self.row[1]
        return value

    @property
    def version(self) -> int:
        value: int = self.row[2]
        return value

    @property
    def correlation_id(self) -> UUID:
        value: UUID = self.row[3]
        return value

    @property
    def causation_id(self) -> UUID | None:
        value: UUID | None = self.row[4]
        return value

    @property
    def saga_id(self) -> UUID | None:
        value: UUID | None = self.row[5]
        return value

    @property
    def step(self) -> int | None:
        value: int | None = self.row[6]
        return value

    @property
    def producer(self) -> str:
        value: str = self.row[7]
        return value

    @property
    def fencing_token(self) -> int | None:
        value: int | None = self.row[8]
        return value

    @property
    def occurred_at(self) -> datetime:
        value: datetime = self.row[9]
        return value

    @property
    def recorded_at(self) -> datetime:
        value: datetime = self.row[10]
        return value

    @property
    def headers_text(self) -> str:
        value: str = self.row[11]
        return value

    @property
    def headers(self) -> JsonObject:
        """The wire headers the message travelled with."""
        parsed: JsonObject = json.loads(self.headers_text)
        return parsed

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


def decode(row: Row, messages: MessageRegistry = registry) -> Recorded:
    """Build a `Recorded` from a row of `select_sql`, decoding its payload through the registry."""
    try:
        return Recorded(row, messages.decode(row[1], row[2], row[12]))
    except StrataError as error:
        return Recorded(row, None, json.loads(row[12]), error.message)


Models = dict[tuple[str, int], type[Message] | None]
"""(type, version) -> the model that validates its payload as it is (None: the registry decodes it, upcasting)."""


def decode_page(
    rows: list[asyncpg.Record], messages: MessageRegistry = registry, models: Models | None = None
) -> list[Recorded]:
    """`decode` for every row; a payload of its type's current version is validated straight from its JSON text by
    its model (what the registry would do, without its per-message look-ups: `models` keeps them across pages), an
    older version or an unknown type goes through the registry (upcasters, the reason it does not decode)."""
    models = {} if models is None else models
    decoded: list[Recorded] = []
    append = decoded.append
    collecting = gc.isenabled()
    gc.disable()
    try:
        for row in rows:
            key = (row[1], row[2])
            model = models.get(key, _UNSEEN)
            if model is _UNSEEN:
                model = models[key] = _model_as_is(messages, *key)
            if model is not None:
                try:
                    append(Recorded(row, model.model_validate_json(row[12])))
                    continue
                except ValidationError:
                    pass  # the registry says why, in its own terms
            append(decode(row, messages))
    finally:
        if collecting:
            gc.enable()
    return decoded


_UNSEEN: Any = object()


def _model_as_is(messages: MessageRegistry, type_name: str, version: int) -> type[Message] | None:
    """The model that validates a payload of (type, version) with no upcasting; None if there is none."""
    if type_name not in messages:
        return None
    model = messages.model_for(type_name)
    return model if model.message_version == version else None


async def pages(
    pool: Pool,
    selection: Selection,
    *,
    after: Cursor | None = None,
    limit: int | None = None,
    page_size: int = 5000,
    schema: str = DEFAULT_SCHEMA,
    messages: MessageRegistry = registry,
) -> AsyncGenerator[list[Recorded], None]:
    """Yield the selection in pages of `page_size`, oldest first, starting after `after` (the keyset: where a
    previous read stopped), at most `limit` messages (None: to the end).

    One query, streamed through a server-side cursor in a read-only transaction: the rows arrive as fast as a plain
    SELECT gives them, and nothing is held in memory beyond two pages (the one decoded, the next one asked for).
    """
    sql, arguments = select_sql(selection, after=after, limit=limit, schema=schema)
    models: Models = {}
    with translated_errors():
        async with pool.acquire() as connection, connection.transaction(readonly=True):
            cursor = await connection.cursor(sql, *arguments)
            following: asyncio.Task[list[asyncpg.Record]] | None = asyncio.ensure_future(cursor.fetch(page_size))
            try:
                while following is not None:
                    rows = await following
                    following = None
                    if len(rows) == page_size:  # maybe more: ask for it now, sent before this page is decoded
                        following = asyncio.ensure_future(cursor.fetch(page_size))
                        await asyncio.sleep(0)
                    if rows:
                        yield decode_page(rows, messages, models)
            finally:
                if following is not None:  # the reader stopped early: the connection must be idle before release
                    await asyncio.gather(following, return_exceptions=True)


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
    async for page in pages(pool, selection, after=after, limit=limit + 1, schema=schema, messages=messages):
        found.extend(page)
    if len(found) > limit:
        return found[:limit], found[limit - 1].cursor
    return found, None

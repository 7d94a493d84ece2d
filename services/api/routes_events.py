"""The journal and the live bus, as `strata events history` and `strata events tail` show them.

- GET /events/history: the journal (every command and event a service handled or emitted), oldest first, by type,
  correlation id, saga id and time, a page at a time in keyset order (occurred_at, message_id): `next` is the
  cursor of the following page (`after`), None on the last one. Read through the replay tool's reader, so each
  payload is masked by its schema, then by name (`schemas.redact`).
- GET /events/tail: the events crossing the bus now, as Server-Sent Events (a `message` event each, the payload
  masked by `schemas.redact.redacted_body` as the CLI's tail masks it), through a private queue that vanishes with
  the stream. Commands are not tailed (see `services.cli.events`); the history has them. The stream opens with a
  `: tailing` comment once its queue is bound, so a client knows from then on nothing is missed.
"""

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import anyio
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from bus.ports import Binding, Delivery
from services.api.auth import caller, context_of
from services.api.errors import ERROR_RESPONSES
from services.api.keys import ApiKey, Role
from services.catalog import load_all_messages
from services.cli.events import _line as tail_line
from services.replay.reading import read
from services.replay.selection import Cursor, Selection

router = APIRouter(prefix="/api/v1", tags=["events"], responses=ERROR_RESPONSES)
Viewer = Annotated[ApiKey, Depends(caller(Role.VIEWER))]
Types = Annotated[list[str], Query(alias="type", max_length=20, description="Only these types (repeatable).")]
TAIL_BUFFER = 1000  # events waiting for a slow client; past it they are counted as dropped, never held
KEEPALIVE_SECONDS = 15.0


class JournalPage(BaseModel):
    """A page of the journal, oldest first."""

    messages: list[dict[str, Any]] = Field(  # Any: JSON values of each message, payload masked
        description="Each message: ids, type and version, producer, saga and step, times, headers and payload."
    )
    next: str | None = Field(description="The `after` of the next page; None when this is the last.")


@router.get("/events/history", response_model=JournalPage)
async def history(
    request: Request,
    key: Viewer,
    *,
    types: Types = [],  # noqa: B006  # FastAPI copies a query's default
    correlation: Annotated[UUID | None, Query(description="Only this correlation id (one operation).")] = None,
    saga: Annotated[UUID | None, Query(description="Only messages a saga sent or received.")] = None,
    since: Annotated[datetime | None, Query(description="Not before this time (ISO 8601, with its zone).")] = None,
    until: Annotated[datetime | None, Query(description="Not after this time (ISO 8601, with its zone).")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[
        str | None, Query(max_length=100, description="The `next` of the previous page (TIME/MESSAGE_ID).")
    ] = None,
) -> JournalPage:
    """What the journal recorded, commands included, a page at a time."""
    selection = Selection(
        correlation_ids=(correlation,) if correlation else (),
        saga_ids=(saga,) if saga else (),
        types=tuple(types),
        since=since,
        until=until,
    )
    cursor = Cursor.parse(after) if after else None
    found, following = await read(context_of(request).pool, selection, limit=limit, after=cursor)
    return JournalPage(messages=[each.as_json() for each in found], next=str(following) if following else None)


async def _tail(
    request: Request, bindings: list[Binding], correlation: UUID | None, count: int | None
) -> AsyncIterator[str]:
    """The stream: bind a private queue, then each event as it arrives, until the client leaves (or `count`)."""
    waiting: asyncio.Queue[dict[str, object]] = asyncio.Queue(TAIL_BUFFER)
    dropped = 0

    async def take(delivery: Delivery) -> None:
        nonlocal dropped
        if correlation is not None and delivery.message.correlation_id != str(correlation):
            return
        try:
            waiting.put_nowait(tail_line(delivery))
        except asyncio.QueueFull:
            dropped += 1

    load_all_messages()  # every message's schema, so each payload is masked by its own model
    subscription = await context_of(request).transport.watch(bindings, take)
    try:
        yield ": tailing\n\n"
        sent = 0
        while count is None or sent < count:
            try:
                line = await asyncio.wait_for(waiting.get(), KEEPALIVE_SECONDS)
            except TimeoutError:
                yield ": still tailing\n\n"  # keeps proxies from closing an idle stream
                continue
            if dropped:
                yield f"event: dropped\ndata: {json.dumps({'dropped': dropped})}\n\n"
                dropped = 0
            yield f"event: message\nid: {line['message_id']}\ndata: {json.dumps(line, default=str)}\n\n"
            sent += 1
    finally:
        with anyio.CancelScope(shield=True):  # a client that left cancels the stream: the queue still goes
            await subscription.cancel()


@router.get(
    "/events/tail",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "a `message` event per event on the bus"}},
)
async def tail(
    request: Request,
    key: Viewer,
    *,
    types: Annotated[
        list[str],
        Query(alias="type", max_length=20, description="Only these routing keys (repeatable; `volume.*` works)."),
    ] = [],  # noqa: B006  # FastAPI copies a query's default
    correlation: Annotated[UUID | None, Query(description="Only this correlation id.")] = None,
    count: Annotated[int | None, Query(ge=1, le=100_000, description="End the stream after this many.")] = None,
) -> StreamingResponse:
    """Server-Sent Events: every event crossing the bus from now on (secrets masked), until the client leaves."""
    keys = [each.strip() for each in types if each.strip()] or ["#"]
    bindings = [Binding("events", routing_key[:255]) for routing_key in keys]
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(
        _tail(request, bindings, correlation, count), media_type="text/event-stream", headers=headers
    )

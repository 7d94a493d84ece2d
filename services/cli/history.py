"""`strata events history`: what the journal recorded, by type, correlation id, saga id and time.

It reads `bus.journal` (STRATA_DATABASE_URL, STRATA_BUS_SCHEMA), where every command and event a service handled
or emitted is kept; `strata events tail` shows what crosses the bus now, this shows what crossed it before.
"""

import asyncio
import json
import os
from datetime import datetime
from typing import TYPE_CHECKING, Annotated
from uuid import UUID

import typer
from rich.table import Table

from schemas.errors import StrataError
from services.cli.talking import make_console

if TYPE_CHECKING:  # the bus is imported when the command runs, so that `strata --help` stays fast
    from bus.postgres import JournalEntry, JournalQuery

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
console = make_console()


def _uuid(value: str | None, option: str) -> UUID | None:
    if value is None:
        return None
    try:
        return UUID(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a UUID", param_hint=option) from None


def _time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO 8601 time", param_hint=option) from None
    if moment.tzinfo is None:
        raise typer.BadParameter(f"{value!r} needs a time zone, e.g. 2026-01-01T00:00:00+00:00", param_hint=option)
    return moment


async def _find(database_url: str, schema: str, query: "JournalQuery") -> "list[JournalEntry]":
    from bus.postgres import PostgresJournal, create_pool

    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        return await PostgresJournal(pool, schema=schema).find(query)
    finally:
        await pool.close()


def _show(entries: "list[JournalEntry]") -> None:
    table = Table(box=None, header_style="bold")
    # Ids are long: narrow terminals fold them rather than cut them (the full record is in --json).
    for column in ("occurred at", "type", "message id", "producer", "saga / step"):
        table.add_column(column, overflow="fold")
    for entry in entries:
        saga = f"{entry.saga_id} / {entry.step}" if entry.saga_id else ""
        table.add_row(
            entry.occurred_at.isoformat(timespec="milliseconds"),
            f"{entry.type} v{entry.version}",
            str(entry.message_id),
            entry.producer,
            saga,
        )
    console.print(table)
    console.print(f"[dim]{len(entries)} message(s)[/dim]")


def history(
    *,
    types: Annotated[list[str] | None, typer.Option("--type", help="Only this message type (repeatable).")] = None,
    correlation: Annotated[str | None, typer.Option("--correlation", help="Only this correlation id.")] = None,
    saga: Annotated[str | None, typer.Option("--saga", help="Only messages sent or received by this saga.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Not before this ISO 8601 time (with zone).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Not after this ISO 8601 time (with zone).")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000, help="At most this many (newest).")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Show recorded commands and events, oldest first (the newest --limit of those that match)."""
    from bus.postgres import DEFAULT_SCHEMA, JournalQuery

    try:
        query = JournalQuery(
            correlation_id=_uuid(correlation, "--correlation"),
            saga_id=_uuid(saga, "--saga"),
            types=tuple(types or ()),
            since=_time(since, "--since"),
            until=_time(until, "--until"),
            limit=limit,
            latest=True,
        )
        database_url = os.environ.get("STRATA_DATABASE_URL", DEFAULT_DATABASE_URL)
        schema = os.environ.get("STRATA_BUS_SCHEMA", DEFAULT_SCHEMA)
        entries = asyncio.run(_find(database_url, schema, query))
    except StrataError as error:
        # The URL is never printed: it may hold a password.
        console.print(f"[red]{type(error).__name__}:[/red] {error.message}")
        raise typer.Exit(1) from None
    if as_json:
        for entry in entries:
            typer.echo(json.dumps(entry.as_json()))
    else:
        _show(entries)

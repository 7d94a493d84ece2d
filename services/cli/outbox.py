"""`strata outbox list`: the messages the services committed but the relay has not published yet, with how often
it tried and why it failed (read from STRATA_DATABASE_URL; a backlog here is what a stuck broker looks like)."""

from datetime import datetime
from typing import Annotated, Any

import typer
from pydantic import BaseModel, ConfigDict
from rich.table import Table

from schemas.redact import mask_url_passwords
from services.cli.talking import JsonOption, console, print_json, read

app = typer.Typer(help="The transactional outbox: messages committed and not yet published.", no_args_is_help=True)


class OutboxRow(BaseModel):
    """One unsent message of the outbox."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: int
    message_id: str
    type: str
    routing_key: str
    created_at: datetime
    attempts: int
    next_attempt_at: datetime
    last_error: str | None


async def unsent_rows(connection: Any, limit: int) -> list[OutboxRow]:  # Any: an asyncpg connection
    """The oldest `limit` unsent messages (`strata outbox list`, `GET /api/v1/outbox`), errors' URL passwords masked."""
    rows = await connection.fetch(
        "SELECT id, message_id::text, type, routing_key, created_at, attempts, next_attempt_at, last_error "
        "FROM bus.outbox WHERE sent_at IS NULL ORDER BY id LIMIT $1",
        limit,
    )
    return [
        OutboxRow(**{**dict(row), "last_error": mask_url_passwords(row["last_error"] or "") or None}) for row in rows
    ]


@app.command("list")
def list_unsent(
    limit: Annotated[int, typer.Option(min=1, help="At most this many, oldest first.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """List the unsent messages, oldest first, with their attempts and last error.

    Example: strata outbox list --limit 20
    """

    unsent = read(lambda connection: unsent_rows(connection, limit))
    if as_json:
        print_json(unsent)
        return
    if not unsent:
        console.print("the outbox is empty: every committed message was published")
        return
    table = Table(box=None, header_style="bold")
    table.add_column("id", justify="right", no_wrap=True)
    table.add_column("type", overflow="fold")
    table.add_column("waiting since", no_wrap=True)
    table.add_column("tries", justify="right", no_wrap=True)
    table.add_column("last error", overflow="fold", ratio=1)
    for row in unsent:
        table.add_row(
            str(row.id), row.type, row.created_at.strftime("%m-%d %H:%M:%S"), str(row.attempts), row.last_error or ""
        )
    console.print(table)

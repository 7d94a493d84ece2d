"""`strata bridge status|events`: what the CloudStack bridge receives and what it made of each event.

`status` asks CloudStack's broker about the bridge's queue (consumed or not, messages waiting: the lag) and reads the
bridge's tables (STRATA_DATABASE_URL) for its counts; `events` lists the CloudStack events received, newest first,
with the outcome: command_sent (with the command's correlation id), duplicate, recorded, reconciled, disagreed,
refused, ignored or dead_lettered, and whether CloudStack reported a failure.
"""

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import typer
from pydantic import BaseModel, ConfigDict, Field
from rich.table import Table

from schemas import FailedPrecondition
from services.cli.talking import JsonOption, console, parse_uuid, print_json, read

app = typer.Typer(
    help="The CloudStack bridge: its link, its lag and what it made of CloudStack's events.", no_args_is_help=True
)
NEVER_RAN = "the bridge has not run against this database yet: start it with `strata run bridge`"


class BridgeEvent(BaseModel):
    """One CloudStack event the bridge received."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seq: int
    received_at: datetime
    routing_key: str
    event: str | None
    status: str | None
    entity: str | None
    entity_uuid: UUID | None
    outcome: str = Field(description="What the bridge made of it.")
    correlation_id: UUID | None = Field(description="The strata command's correlation id, when one was sent.")
    cloudstack_failed: bool = Field(description="CloudStack reported a failure (Completed, 'Error while ...').")
    detail: str | None


class BridgeStatus(BaseModel):
    """The bridge's link, lag and counts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    exchange: str
    queue: str
    consumers: int | None = Field(description="Consumers of the bridge's queue: 0 when it is stopped, None if absent.")
    waiting: int | None = Field(description="CloudStack messages not taken yet (the lag), None if the queue is absent.")
    last_received_at: datetime | None
    open_operations: int = Field(description="Operations strata works on, their outcome not reached yet.")
    unsent_answers: int = Field(description="Answers not yet published on CloudStack's exchange.")
    outcomes: dict[str, int] = Field(description="CloudStack events received, by what the bridge made of them.")
    cloudstack_failures: int = Field(description="Completed events whose description said 'Error while ...'.")


def _exists(connection: Any) -> Any:  # Any: asyncpg's connection and its awaitable
    return connection.fetchval("SELECT to_regclass('bridge.events') IS NOT NULL")


@app.command("events")
def events(
    entity: Annotated[str | None, typer.Option(help="Only the events about this CloudStack uuid.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many, newest first.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """List the CloudStack events received and what the bridge made of each.

    Example: strata bridge events --entity 0b7e5c1e-8c3a-4f0e-9d5b-2f1a7c9e4d11 --json
    """
    entity_uuid = parse_uuid(entity, "--entity") if entity is not None else None

    async def work(connection: Any) -> list[BridgeEvent]:  # Any: an asyncpg connection
        if not await _exists(connection):
            raise FailedPrecondition(NEVER_RAN)
        rows = await connection.fetch(
            "SELECT seq, received_at, routing_key, event, status, entity, entity_uuid, outcome, correlation_id,"
            " cloudstack_failed, detail FROM bridge.events WHERE $1::uuid IS NULL OR entity_uuid = $1"
            " ORDER BY seq DESC LIMIT $2",
            entity_uuid,
            limit,
        )
        return [BridgeEvent(**dict(row)) for row in rows]

    found = read(work)
    if as_json:
        print_json(found)
        return
    if not found:
        console.print("no CloudStack event received" + (f" about {entity}" if entity else ""))
        return
    table = Table(box=None, header_style="bold")
    for column in ("received", "event", "status", "entity", "outcome", "command"):
        table.add_column(column, no_wrap=True)
    table.add_column("detail", overflow="fold", ratio=1)
    for row in found:
        status = f"{row.status} (failed)" if row.cloudstack_failed else (row.status or "")
        command = str(row.correlation_id)[:8] if row.correlation_id else ""
        subject = f"{row.entity or ''} {str(row.entity_uuid)[:8] if row.entity_uuid else ''}".strip()
        table.add_row(
            row.received_at.strftime("%H:%M:%S"),
            row.event or "",
            status,
            subject,
            row.outcome,
            command,
            row.detail or "",
        )
    console.print(table)


async def _queue_state(url: str, queue: str) -> tuple[int | None, int | None]:
    """(consumers, messages) of the bridge's queue on CloudStack's broker; (None, None) if it does not exist."""
    import aio_pika
    from aiormq.exceptions import ChannelNotFoundEntity

    try:
        connection = await aio_pika.connect(url, timeout=5)
    except (OSError, TimeoutError, aio_pika.exceptions.AMQPError) as error:
        raise FailedPrecondition(f"CloudStack's broker is unreachable ({type(error).__name__})") from None
    async with connection:
        channel = await connection.channel()
        try:
            declared = await channel.declare_queue(queue, passive=True)
        except ChannelNotFoundEntity:
            return None, None
        result = declared.declaration_result
        return result.consumer_count, result.message_count


@app.command("status")
def status(as_json: JsonOption = False) -> None:
    """Show the bridge's link to CloudStack, its lag and its counts per outcome.

    Example: strata bridge status --json
    """
    from bus.settings import BusSettings
    from services.bridge.bootstrap import cloudstack_queue
    from services.bridge.settings import BridgeSettings

    settings, bus = BridgeSettings(), BusSettings()
    queue = cloudstack_queue(bus.namespace)
    url = settings.amqp_url.get_secret_value() if settings.amqp_url else bus.amqp_url

    async def work(connection: Any) -> BridgeStatus:  # Any: an asyncpg connection
        if not await _exists(connection):
            raise FailedPrecondition(NEVER_RAN)
        consumers, waiting = await _queue_state(url, queue)
        counts = await connection.fetch("SELECT outcome, count(*) AS n FROM bridge.events GROUP BY outcome")
        return BridgeStatus(
            exchange=settings.exchange,
            queue=queue,
            consumers=consumers,
            waiting=waiting,
            last_received_at=await connection.fetchval("SELECT max(received_at) FROM bridge.events"),
            open_operations=await connection.fetchval(
                "SELECT count(*) FROM bridge.operations WHERE outcome IS NULL AND command_type IS NOT NULL"
            ),
            unsent_answers=await connection.fetchval("SELECT count(*) FROM bridge.answers WHERE sent_at IS NULL"),
            outcomes={row["outcome"]: row["n"] for row in counts},
            cloudstack_failures=await connection.fetchval("SELECT count(*) FROM bridge.events WHERE cloudstack_failed"),
        )

    found = read(work)
    if as_json:
        print_json(found)
        return
    linked = (
        "not declared (never started)"
        if found.consumers is None
        else ("consuming" if found.consumers else "NOT consuming (the bridge is stopped)")
    )
    console.print(f"CloudStack exchange {found.exchange}, queue {found.queue}: {linked}")
    console.print(
        f"lag: {found.waiting if found.waiting is not None else '-'} messages waiting; "
        f"{found.open_operations} operations in progress; {found.unsent_answers} answers unsent"
    )
    last = found.last_received_at.strftime("%Y-%m-%d %H:%M:%S %Z") if found.last_received_at else "never"
    console.print(f"last event received: {last}; CloudStack reported {found.cloudstack_failures} failures")
    for outcome, count in sorted(found.outcomes.items()):
        console.print(f"  {outcome:<14} {count}")

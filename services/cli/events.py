"""`strata events tail`: a live view of the events crossing the bus.

Commands are not tailed: a queue bound to the commands exchange would take every command, so a command that no
service or agent takes (a mistyped host) would look delivered to the outbox, which then never fails it. The journal
has every command (`strata events history`).
"""

import asyncio
import json
from typing import TYPE_CHECKING, Annotated

import typer

from schemas import registry
from schemas.errors import StrataError
from schemas.redact import redacted_body
from services.cli.talking import make_console

if TYPE_CHECKING:  # the bus is imported when the command runs, so that `strata --help` stays fast
    from bus.ports import Delivery

app = typer.Typer(help="Watch events, and look up the journal (STRATA_AMQP_URL, STRATA_NAMESPACE).")
console = make_console()


def _line(delivery: "Delivery") -> dict[str, object]:
    """What the tail shows of a message: its ids and its payload, with secrets masked (`schemas.redact`)."""
    message = delivery.message
    headers = message.headers
    version = headers.get("version")
    payload = redacted_body(message.type, version if isinstance(version, int) else None, message.body, registry)
    return {
        "message_id": message.message_id,
        "type": message.type,
        "version": headers.get("version"),
        "occurred_at": headers.get("occurred_at"),
        "correlation_id": message.correlation_id,
        "causation_id": headers.get("causation_id"),
        "saga_id": headers.get("saga_id"),
        "producer": message.app_id,
        "payload": payload,
    }


async def _tail(types: list[str], correlation: str | None, count: int | None, as_json: bool) -> None:
    from bus.ports import Binding
    from bus.rabbit import RabbitTransport
    from bus.settings import BusSettings
    from services.catalog import load_all_messages

    load_all_messages()  # every message's schema, so that each payload is masked by its own model
    transport = RabbitTransport(BusSettings(), purpose="tail", declare_topology=False)
    await transport.start()
    keys = types or ["#"]
    bindings = [Binding("events", key) for key in keys]  # never `commands`: see the module's docstring
    seen = 0
    enough = asyncio.Event()

    async def show(delivery: "Delivery") -> None:
        nonlocal seen
        if correlation and delivery.message.correlation_id != correlation:
            return
        line = _line(delivery)
        if as_json:
            typer.echo(json.dumps(line))
        else:
            console.print(
                f"[dim]{line['occurred_at']}[/dim] [bold]{line['type']}[/bold] {line['message_id']} "
                f"corr={line['correlation_id']} from={line['producer']}"
            )
        seen += 1
        if count is not None and seen >= count:
            enough.set()

    # The private queue is exclusive and auto-deleted: a tail leaves nothing behind and takes nothing from services.
    subscription = await transport.watch(bindings, show)
    if not as_json:
        console.print(f"[dim]tailing {transport.namespace} (Ctrl-C to stop)[/dim]")
    try:
        await enough.wait()
    finally:
        await subscription.cancel()
        await transport.close()


@app.command("tail")
def tail(
    types: Annotated[
        list[str] | None, typer.Option("--type", help="Only this type (repeatable; `volume.*` works).")
    ] = None,
    correlation: Annotated[str | None, typer.Option("--correlation", help="Only this correlation id.")] = None,
    count: Annotated[int | None, typer.Option("--count", min=1, help="Stop after this many messages.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Print events as they cross the bus, until Ctrl-C (or --count); commands are in `strata events history`."""
    try:
        asyncio.run(_tail(list(types or []), correlation, count, as_json))
    except KeyboardInterrupt:
        pass
    except StrataError as error:
        console.print(f"[red]{type(error).__name__}:[/red] {error.message}")
        raise typer.Exit(1) from None

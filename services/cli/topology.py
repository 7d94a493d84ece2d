"""`strata topology apply`: declare every daemon's queue with its bindings on RabbitMQ (STRATA_AMQP_URL,
STRATA_NAMESPACE), from the handler tables the daemons declare (`services/daemons.py`).

Events reach only the queues that exist when they are published. With the topology applied (every daemon also
applies it when it starts), an event published before its consumer first ran waits in that consumer's queue.
A host's own agent queues are declared by that host's agent when it starts.
"""

import asyncio
import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from schemas.errors import StrataError
from services.cli.talking import fail, make_console

if TYPE_CHECKING:  # the bus and the daemons are imported when the command runs, so that `strata --help` stays fast
    from services.runtime.daemon import Queue

app = typer.Typer(help="The deployed topology: every daemon's queue and bindings (STRATA_AMQP_URL, STRATA_NAMESPACE).")
console = make_console()

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@app.command("apply")
def apply(as_json: JsonOption = False) -> None:
    """Declare every daemon's queue and its bindings (idempotent: what exists is left as it is)."""
    try:
        queues = asyncio.run(_apply())
    except StrataError as error:
        fail(error)
    if as_json:
        print(json.dumps([_described(queue) for queue in queues], indent=2))
        return
    table = Table("queue", "bindings")
    for queue in queues:
        table.add_row(queue.name, ", ".join(f"{b.exchange} {b.routing_key}" for b in queue.bindings()))
    console.print(table)


async def _apply() -> "list[Queue]":
    from bus.rabbit import RabbitTransport
    from bus.settings import BusSettings
    from services.daemons import deployed
    from services.runtime.topology import apply_topology

    settings = BusSettings()
    daemons = deployed()
    transport = RabbitTransport(settings, purpose="topology")
    await transport.start()
    try:
        await apply_topology(transport, daemons, kind=settings.queue_kind)
    finally:
        await transport.close()
    return [queue for daemon in daemons for queue in daemon.queues]


def _described(queue: "Queue") -> dict[str, object]:
    return {
        "queue": queue.name,
        "bindings": [
            {"exchange": binding.exchange, "routing_key": binding.routing_key} for binding in queue.bindings()
        ],
    }
